"""Make file-derived text safe to show a person in a terminal or a web page.

A file name can hold any character but ``/`` and NUL. Printed raw, a name with terminal
control characters (``ESC [2K ESC [1A`` erases the line above, ``\\r`` rewinds the current
one, ``\\x9b`` is a one-byte CSI on some terminals) can hide or rewrite the lines shown
before the user confirms a removal; a Unicode bidi override (U+202E) can make
``photo\\u202egpj.exe`` read as ``photoexe.jpg``. :func:`printable` turns every such
character into a visible escape, so what is shown is what is on disk.

``printable`` returns plain text: pass it through ``rich.markup.escape`` before handing it to
rich markup (or use :func:`markup`), and through ``html.escape`` for HTML. JSON output keeps
the true path: JSON escapes control characters itself.
"""

from __future__ import annotations

import os

# Unicode format characters that change the visual order of what follows them: the
# embeddings and overrides (U+202A-U+202E), the isolates (U+2066-U+2069), the implicit marks
# (U+200E, U+200F, U+061C). Shown as ``\\u202e``.
BIDI_CONTROLS = frozenset(
    {0x061C, 0x200E, 0x200F, 0x202A, 0x202B, 0x202C, 0x202D, 0x202E}
    | {0x2066, 0x2067, 0x2068, 0x2069}
)


def _escape_char(ch: str) -> str:
    code = ord(ch)
    if code < 0x20 or code == 0x7F or 0x80 <= code <= 0x9F:  # C0, DEL, C1
        return f"\\x{code:02x}"
    if code in BIDI_CONTROLS or 0xD800 <= code <= 0xDFFF or code in (0x2028, 0x2029):
        # Bidi controls; lone surrogates (never printable; undecodable bytes are handled
        # below); the Unicode line and paragraph separators (a line break to a terminal).
        return f"\\u{code:04x}"
    return ch


_TABLE = {c: _escape_char(chr(c)) for c in range(0xA0)}
_TABLE.update({c: _escape_char(chr(c)) for c in BIDI_CONTROLS | {0x2028, 0x2029}})


def printable(path: object) -> str:
    """``path`` (a str or a Path) with every control character shown as a visible escape.

    C0 controls (including ``\\t``, ``\\n``, ``\\r``), DEL and C1 controls become ``\\xNN``;
    bidi controls and line/paragraph separators become ``\\uNNNN``; bytes that are not UTF-8
    (carried by Python as surrogates) become ``\\xNN`` as in the raw name. Everything else,
    including backslashes and ordinary non-ASCII letters, is left as it is.
    """
    text = os.fspath(path) if isinstance(path, os.PathLike) else str(path)
    if any(0xD800 <= ord(c) <= 0xDFFF for c in text):
        try:  # surrogateescape'd bytes from the file system: show them as the raw bytes
            text = os.fsencode(text).decode("utf-8", "backslashreplace")
        except UnicodeEncodeError:  # a surrogate that is not an escaped byte
            text = "".join(_escape_char(c) if 0xD800 <= ord(c) <= 0xDFFF else c for c in text)
    return text.translate(_TABLE)


def markup(path: object) -> str:
    """:func:`printable`, then escaped for rich markup: ready to put in a rich f-string."""
    from rich.markup import escape

    return escape(printable(path))
