"""Terminal gallery (Textual): one group per screen, colour thumbnails in half-block characters.

Keys: ←/→ previous/next group, ↑/↓ select a file, k make the selected file the keeper,
space toggle keep/remove, n mark the group "not duplicates", enter finish (the reviewed plan
is then confirmed and carried out), escape cancel (nothing is removed).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
from rich.console import Group as RichGroup
from rich.panel import Panel
from rich.table import Table
from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.widgets import Footer, Static

from dedup_cli.imageio import ImageDecodeError, decode_for_display
from dedup_cli.review.session import ReviewSession


def halfblock_thumbnail(path: Path, columns: int = 28, rows: int = 10) -> Text:
    """The image as ``rows`` lines of ``columns`` "▀" characters: each character shows two
    pixels (foreground above, background below), which every colour terminal can draw."""
    try:
        image = decode_for_display(path, columns * 4)
    except (OSError, ImageDecodeError):
        return Text("(no preview)", style="dim")
    image.thumbnail((columns, rows * 2))
    width, height = image.size
    rgb = np.asarray(image.convert("RGB"))
    text = Text()
    for y in range(0, height - 1, 2):
        for x in range(width):
            top = rgb[y, x]
            bottom = rgb[y + 1, x]
            text.append(
                "▀",
                style=f"rgb({top[0]},{top[1]},{top[2]}) on rgb({bottom[0]},{bottom[1]},{bottom[2]})",
            )
        text.append("\n")
    return text


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"


class ReviewApp(App[None]):
    """Review a plan group by group; ``session`` holds the result."""

    CSS = "#group { padding: 0 1; }"
    BINDINGS: ClassVar[list[Binding]] = [  # type: ignore[assignment]
        Binding("left", "previous", "prev group"),
        Binding("right", "next", "next group"),
        Binding("up", "select(-1)", "up", show=False),
        Binding("down", "select(1)", "down", show=False),
        Binding("k", "keeper", "make keeper"),
        Binding("space", "toggle_remove", "keep/remove"),
        Binding("n", "not_duplicates", "not duplicates"),
        Binding("enter", "finish", "finish"),
        Binding("escape", "cancel", "cancel"),
    ]

    def __init__(self, session: ReviewSession, thumbnail_columns: int = 28) -> None:
        super().__init__()
        self.session = session
        self.thumbnail_columns = thumbnail_columns
        self._thumbs: dict[Path, Text] = {}

    def compose(self) -> ComposeResult:
        yield Static(id="group")
        yield Footer()

    def on_mount(self) -> None:
        self.title = "dedup review"
        self._show()

    def _thumb(self, path: Path) -> Text:
        if path not in self._thumbs:
            self._thumbs[path] = halfblock_thumbnail(path, self.thumbnail_columns)
        return self._thumbs[path]

    def _show(self) -> None:
        session = self.session
        widget = self.query_one("#group", Static)
        if not session.groups:
            widget.update("No duplicate groups.")
            return
        group = session.group
        header = Text(
            f"group {session.index + 1} of {len(session.groups)}"
            + ("   NOT DUPLICATES (will be remembered)" if group.not_duplicates else ""),
            style="bold yellow" if group.not_duplicates else "bold",
        )
        grid = Table.grid(padding=(0, 1))
        panels = []
        for position, file in enumerate(group.files):
            if position == group.keeper:
                role, colour = "KEEPER", "green"
            elif position in group.remove and not group.not_duplicates:
                role, colour = "REMOVE", "red"
            else:
                role, colour = "KEEP", "green"
            similarity = group.similarity.get(position)
            caption = Text(f"{file.path}\n{_size(file.size)} · {file.width}×{file.height}")
            if similarity is not None:
                caption.append(f"\nsimilarity to keeper {similarity:.3f}")
            marker = "▶ " if position == session.selected else ""
            panels.append(
                Panel(
                    RichGroup(self._thumb(file.absolute), caption),
                    title=f"{marker}{role}",
                    border_style=f"bold {colour}" if marker else colour,
                    width=self.thumbnail_columns + 4,
                )
            )
        grid.add_row(*panels)
        widget.update(RichGroup(header, grid))

    def action_next(self) -> None:
        self.session.next_group()
        self._show()

    def action_previous(self) -> None:
        self.session.previous_group()
        self._show()

    def action_select(self, delta: int) -> None:
        self.session.select(delta)
        self._show()

    def action_keeper(self) -> None:
        self.session.make_keeper()
        self._show()

    def action_toggle_remove(self) -> None:
        self.session.toggle()
        self._show()

    def action_not_duplicates(self) -> None:
        self.session.toggle_not_duplicates()
        self._show()

    def action_finish(self) -> None:
        self.session.finish()
        self.exit()

    def action_cancel(self) -> None:
        self.session.cancel()
        self.exit()


def review_in_terminal(session: ReviewSession) -> ReviewSession:
    """Run the gallery until the reviewer finishes or cancels."""
    ReviewApp(session).run()
    if not session.finished:
        session.cancel()
    return session
