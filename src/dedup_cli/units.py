"""Sizes for people: one formatting for the CLI, the gallery and the HTML report."""

from __future__ import annotations


def human_bytes(count: float) -> str:
    """``1234567`` -> ``1.2 MB`` (decimal units, as file managers show them)."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(count) < 1000 or unit == "TB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count:.1f} TB"
