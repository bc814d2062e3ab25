"""Terminal gallery (Textual): one group per screen, each file as a colour thumbnail.

Thumbnails are drawn by ``textual-image`` with the sharpest protocol the terminal supports:
Kitty's graphics protocol or Sixel where available, half-block characters everywhere else.

Keys: ←/→ previous/next group, ↑/↓ select a file, k make the selected file the keeper,
space toggle keep/remove, n mark the group "not duplicates", enter finish (the reviewed plan
is then confirmed and carried out), escape cancel (nothing is removed). The keys are shown in
the footer. Related pairs (an overlay, a caption, one frame) follow the groups, framed
yellow: shown so they can be looked at, never removed or edited.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from PIL import Image as PILImage
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Footer, Static

from dedup_cli.media.decode import ImageDecodeError, decode_for_display
from dedup_cli.review.session import ReviewSession
from dedup_cli.text import printable
from dedup_cli.units import human_bytes

THUMBNAIL_PIXELS = 320


def card_role(session: ReviewSession, position: int) -> str:
    """``keeper``, ``keep``, ``remove`` or ``related`` (a related pair: both stay)."""
    group = session.group
    if group.related is not None:
        return "related"
    if position == group.keeper:
        return "keeper"
    if position in group.remove and not group.not_duplicates:
        return "remove"
    return "keep"


class ReviewApp(App[None]):
    """Review a plan group by group; ``session`` holds the result."""

    CSS = """
    #header { padding: 0 1; text-style: bold; }
    #cards { height: auto; }
    .card { width: 34; height: auto; border: round green; margin: 0 1 0 0; }
    .card.remove { border: round red; }
    .card.related { border: round yellow; }
    .card.selected { border: double green; }
    .card.remove.selected { border: double red; }
    .card .thumb { width: 32; height: 12; }
    .card .caption { height: auto; }
    """
    BINDINGS: ClassVar[list[Binding]] = [  # type: ignore[assignment]
        Binding("left", "previous", "prev group"),
        Binding("right", "next", "next group"),
        Binding("up", "select(-1)", "prev file", key_display="↑"),
        Binding("down", "select(1)", "next file", key_display="↓"),
        Binding("k", "keeper", "make keeper"),
        Binding("space", "toggle_remove", "keep/remove"),
        Binding("n", "not_duplicates", "not duplicates"),
        Binding("enter", "finish", "finish"),
        Binding("escape", "cancel", "cancel"),
    ]

    def __init__(self, session: ReviewSession) -> None:
        super().__init__()
        self.session = session
        self._thumbs: dict[Path, PILImage.Image | None] = {}

    def compose(self) -> ComposeResult:
        yield Static(id="header")
        yield Horizontal(id="cards")
        yield Footer()

    async def on_mount(self) -> None:
        self.title = "dedup review"
        await self._show()

    def _thumb(self, path: Path) -> PILImage.Image | None:
        """Decoded once per review, small (JPEG draft mode), never full size in memory."""
        if path not in self._thumbs:
            try:
                image = decode_for_display(path, THUMBNAIL_PIXELS)
                image.thumbnail((THUMBNAIL_PIXELS, THUMBNAIL_PIXELS))
                self._thumbs[path] = image
            except (OSError, ImageDecodeError):
                self._thumbs[path] = None
        return self._thumbs[path]

    async def _show(self) -> None:
        from textual_image.widget import Image as AutoImage

        session = self.session
        header = self.query_one("#header", Static)
        cards = self.query_one("#cards", Horizontal)
        await cards.remove_children()
        if not session.groups:
            header.update("No duplicate groups.")
            return
        group = session.group
        header.update(session.heading())
        widgets = []
        for position, file in enumerate(group.files):
            role = card_role(session, position)
            label = session.similarity_label(position)
            name = printable(session.plan.shown(file))
            caption = f"{name}\n{human_bytes(file.size)} · {file.width}×{file.height}"
            if label is not None:
                caption += f"\n{label}"
            thumb = self._thumb(file.absolute)
            picture = (
                AutoImage(thumb, classes="thumb")
                if thumb is not None
                else Static("(no preview)", classes="thumb")
            )
            selected = " selected" if position == session.selected else ""
            card = Vertical(
                picture,
                Static(caption, classes="caption", markup=False),
                classes=f"card {role}{selected}",
            )
            card.border_title = ("▶ " if selected else "") + role.upper()
            widgets.append(card)
        await cards.mount(*widgets)

    async def action_next(self) -> None:
        self.session.next_group()
        await self._show()

    async def action_previous(self) -> None:
        self.session.previous_group()
        await self._show()

    async def action_select(self, delta: int) -> None:
        self.session.select(delta)
        await self._show()

    async def action_keeper(self) -> None:
        self.session.make_keeper()
        await self._show()

    async def action_toggle_remove(self) -> None:
        self.session.toggle()
        await self._show()

    async def action_not_duplicates(self) -> None:
        self.session.toggle_not_duplicates()
        await self._show()

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
