"""Progress events, so that long stages (embedding, proof) can be watched: the CLI draws a
bar, the library default is silent."""

from __future__ import annotations


class Progress:
    """Receives progress events; the CLI draws a bar, the library default is silent."""

    def start(self, total: int, description: str | None = None) -> None:
        """A stage of ``total`` steps begins (``description``: what it is, if it changed)."""

    def advance(self, count: int) -> None: ...

    def finish(self) -> None: ...
