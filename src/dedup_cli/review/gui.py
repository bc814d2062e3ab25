"""The original tool's review window, in matplotlib (optional extra ``dedup-cli[gui]``).

Each group's images side by side, the keeper framed green and files to remove red, with
path, size, resolution and similarity as captions; Previous/Next buttons and the ←/→ keys
move between groups; clicking an image makes it the keeper, clicking it again (when it is
not the keeper) toggles keep/remove; ``n`` marks the group "not duplicates"; closing the
window finishes the review; ``escape`` cancels it (nothing is removed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dedup_cli.media.decode import ImageDecodeError, decode_for_display
from dedup_cli.review.session import ReviewSession
from dedup_cli.text import printable

KEEP_COLOUR = "#2e9d3a"
REMOVE_COLOUR = "#d33333"
RELATED_COLOUR = "#d29a00"
KEYS_HINT = (
    "←/→ or Previous/Next: group  ·  click a file: make it the keeper, click again: "
    "keep/remove  ·  n: not duplicates  ·  close the window: done  ·  Esc: cancel"
)


def _thumbnail(path: Path, side: int = 320) -> np.ndarray | None:
    try:
        image = decode_for_display(path, side)
    except (OSError, ImageDecodeError):
        return None
    image.thumbnail((side, side))
    return np.asarray(image)


class MatplotlibReviewer:
    """Draws ``session`` into a figure and edits it from key, click and button events."""

    def __init__(self, session: ReviewSession, figure: Any = None) -> None:
        import matplotlib.pyplot as plt
        from matplotlib.widgets import Button

        self.session = session
        self.figure = figure or plt.figure(figsize=(13, 6))
        self.image_axes: list[Any] = []
        self._thumbs: dict[Path, np.ndarray | None] = {}
        previous_ax = self.figure.add_axes((0.35, 0.02, 0.12, 0.06))
        next_ax = self.figure.add_axes((0.53, 0.02, 0.12, 0.06))
        self.previous_button = Button(previous_ax, "Previous")
        self.next_button = Button(next_ax, "Next")
        self.previous_button.on_clicked(lambda _event: self._move(-1))
        self.next_button.on_clicked(lambda _event: self._move(1))
        self.figure.text(0.5, 0.095, KEYS_HINT, ha="center", fontsize=9, color="#555555")
        canvas = self.figure.canvas
        canvas.mpl_connect("key_press_event", self.on_key)
        canvas.mpl_connect("button_press_event", self.on_click)
        canvas.mpl_connect("close_event", self.on_close)
        self.draw()

    def _thumb(self, path: Path) -> np.ndarray | None:
        if path not in self._thumbs:
            self._thumbs[path] = _thumbnail(path)
        return self._thumbs[path]

    def draw(self) -> None:
        for ax in self.image_axes:
            ax.remove()
        self.image_axes = []
        session = self.session
        if not session.groups:
            self.figure.suptitle("No duplicate groups")
            self.figure.canvas.draw_idle()
            return
        group = session.group
        count = len(group.files)
        self.figure.suptitle(session.heading())
        width = 0.96 / count
        for position, file in enumerate(group.files):
            ax = self.figure.add_axes((0.02 + position * width, 0.15, width - 0.01, 0.72))
            thumb = self._thumb(file.absolute)
            if thumb is not None:
                ax.imshow(thumb)
            ax.set_xticks([])
            ax.set_yticks([])
            removing = position in group.remove and not group.not_duplicates
            colour = (
                RELATED_COLOUR
                if group.related is not None
                else REMOVE_COLOUR
                if removing
                else KEEP_COLOUR
            )
            for spine in ax.spines.values():
                spine.set_edgecolor(colour)
                spine.set_linewidth(6)
            role = (
                "RELATED (STAYS)"
                if group.related is not None
                else "KEEPER"
                if position == group.keeper
                else "REMOVE"
                if removing
                else "KEEP"
            )
            label = session.similarity_label(position)
            facts = f"{file.size / 1000:.1f} KB · {file.width}×{file.height}"
            caption = f"{role}\n{printable(session.plan.shown(file))}\n{facts}"
            if label is not None:
                caption += f"\n{label}"
            ax.set_title(caption, fontsize=8, color=colour)
            self.image_axes.append(ax)
        self.figure.canvas.draw_idle()

    def _move(self, delta: int) -> None:
        if delta > 0:
            self.session.next_group()
        else:
            self.session.previous_group()
        self.draw()

    def on_key(self, event: Any) -> None:
        if event.key == "right":
            self._move(1)
        elif event.key == "left":
            self._move(-1)
        elif event.key == "n":
            self.session.toggle_not_duplicates()
            self.draw()
        elif event.key == "escape":
            self.session.cancel()
            self._close()

    def on_click(self, event: Any) -> None:
        if event.inaxes not in self.image_axes:
            return
        position = self.image_axes.index(event.inaxes)
        group = self.session.group
        if position == group.keeper:
            return
        if position in group.remove:
            self.session.make_keeper(position)
        else:
            self.session.toggle(position)
        self.draw()

    def on_close(self, _event: Any) -> None:
        if not self.session.cancelled:
            self.session.finish()

    def _close(self) -> None:
        import matplotlib.pyplot as plt

        plt.close(self.figure)

    def save(self, path: Path) -> None:
        self.figure.savefig(path, dpi=80)


def review_with_matplotlib(session: ReviewSession) -> ReviewSession:
    """Open the window and block until it is closed."""
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        from dedup_cli.errors import UsageError

        raise UsageError("--review gui needs matplotlib: pip install 'dedup-cli[gui]'") from exc
    MatplotlibReviewer(session)
    plt.show()
    if not session.finished:
        session.cancel()
    return session
