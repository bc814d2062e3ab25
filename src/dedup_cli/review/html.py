"""A self-contained, offline HTML report of a plan: one page, thumbnails embedded.

Meant for sharing and for cron jobs that mail a report: a summary at the top (groups, files,
bytes to free), then one section per group with the keeper framed green and the files to
remove framed red, each with its path, size, resolution and similarity to the keeper.
"""

from __future__ import annotations

import base64
import html
import os
import tempfile
import time
from pathlib import Path

from dedup_cli.core.files import FileInfo
from dedup_cli.core.plan import Plan
from dedup_cli.errors import UsageError
from dedup_cli.media.scan import is_image_name
from dedup_cli.review.thumbnails import thumbnail_jpeg
from dedup_cli.text import printable
from dedup_cli.units import human_bytes

_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5rem;background:#fafafa;color:#222}
h1{font-size:1.4rem;margin:0 0 .5rem}
.summary{display:flex;gap:1.5rem;flex-wrap:wrap;margin:1rem 0 2rem;padding:1rem;
 background:#fff;border:1px solid #ddd;border-radius:8px}
.summary div{min-width:8rem}.summary b{display:block;font-size:1.3rem}
section.group{background:#fff;border:1px solid #ddd;border-radius:8px;padding:1rem;margin:0 0 1.2rem}
section.group h2{font-size:1rem;margin:0 0 .8rem}
.files{display:flex;gap:1rem;flex-wrap:wrap}
figure{margin:0;width:260px;border:5px solid;border-radius:6px;padding:4px;background:#fff}
figure.keep{border-color:#2e9d3a}figure.remove{border-color:#d33}
figure img{width:100%;height:200px;object-fit:contain;background:#eee;display:block}
figure .missing{height:200px;display:flex;align-items:center;justify-content:center;background:#eee}
figcaption{font-size:.8rem;line-height:1.35;word-break:break-all;margin-top:4px}
.tag{font-weight:bold;text-transform:uppercase;font-size:.75rem}
.keep .tag{color:#2e9d3a}.remove .tag{color:#d33}
.note{word-break:normal;overflow-wrap:anywhere}
figure.related{border-color:#d29a00}.related .tag{color:#b07d00}
"""


# Marks a page as dedup's own, so a later report may replace it (and nothing else).
GENERATOR = "<meta name='generator' content='dedup report'>"


def _shown(text: object) -> str:
    """File-derived text for a person to read: control characters and bidi overrides made
    visible (``\\x1b``, ``\\u202e``), then HTML-escaped."""
    return html.escape(printable(text))


def _true_path(path: object) -> str:
    """The path for scripts (``data-path``): HTML-escaped, with control characters as
    numeric references (``&#x1b;``), so the page holds none raw and a browser gives back
    C0 controls and ``\\r`` exactly (a raw ``\\r`` would be read as ``\\n``). HTML maps
    references to C1 controls (``&#x80;``-``&#x9f;``) to Windows-1252 characters: a name
    with one of those (rare: U+0080-U+009F in a UTF-8 name) is not given back exactly."""
    text = html.escape(str(path))
    return "".join(f"&#x{ord(c):x};" if printable(c) != c else c for c in text)


def _picture(path: Path, alt: object, side: int) -> str:
    """The file's thumbnail embedded in the page, or a placeholder."""
    thumb = thumbnail_jpeg(path, side)
    if thumb is None:
        return '<div class="missing">no preview</div>'
    data = base64.b64encode(thumb).decode("ascii")
    return f'<img alt="{_shown(alt)}" src="data:image/jpeg;base64,{data}">'


def _figure(file: FileInfo, role: str, note: str, side: int) -> str:
    picture = _picture(file.absolute, file.path, side)
    size = f"{file.width}×{file.height}" if file.width and file.height else "?"
    return (
        f'<figure class="{role}" data-path="{_true_path(file.absolute)}">{picture}'
        f'<figcaption><span class="tag">{role}</span> <span class="note">'
        f"{_shown(note)}</span><br>"
        f"{_shown(file.absolute)}<br>{human_bytes(file.size)} · {size}</figcaption></figure>"
    )


RELATED_SHOWN = 200  # related pairs drawn with thumbnails; the rest are counted


def _related_figure(path: Path, side: int) -> str:
    picture = _picture(path, path, side)
    return (
        f'<figure class="related" data-path="{_true_path(path)}">{picture}'
        f'<figcaption><span class="tag">related: stays</span><br>{_shown(path)}'
        "</figcaption></figure>"
    )


def render_html(plan: Plan, title: str = "dedup report", thumbnail_side: int = 256) -> str:
    """The whole page as a string; thumbnails are decoded one file at a time."""
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        GENERATOR,
        f"<title>{_shown(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_shown(title)}</h1>",
        f"<p>{_shown(plan.root)} · model {html.escape(plan.model)} · threshold "
        f"{plan.threshold:.3f} · keep {html.escape(plan.keep_strategy)} · "
        f"{time.strftime('%Y-%m-%d %H:%M')}</p>",
        "<div class='summary'>",
        f"<div>groups<b id='n-groups'>{len(plan.groups)}</b></div>",
        f"<div>files to remove<b id='n-remove'>{plan.files_to_remove}</b></div>",
        f"<div>files kept<b id='n-keep'>{len(plan.groups)}</b></div>",
        f"<div>space to free<b id='bytes'>{human_bytes(plan.bytes_to_free)}</b></div>",
        "</div>",
    ]
    if not plan.groups:
        parts.append("<p>No duplicates found.</p>")
    for number, group in enumerate(plan.groups, start=1):
        parts.append(
            f"<section class='group' id='group-{number}'><h2>Group {number} · "
            f"{len(group.remove)} to remove · "
            f"{human_bytes(sum(r.file.size for r in group.remove))}</h2><div class='files'>"
        )
        kept = f"kept: {group.why}" if group.why else "kept"
        parts.append(_figure(group.keep, "keep", kept, thumbnail_side))
        for removal in group.remove:
            note = f"similarity {removal.similarity:.3f} ({removal.method})"
            parts.append(_figure(removal.file, "remove", note, thumbnail_side))
        parts.append("</div></section>")
    if plan.related:
        parts.append(
            f"<h2 id='related'>Related, kept ({len(plan.related)})</h2><p>One picture is an "
            "edit of the other (an overlay, a caption) or they share a frame: shown so they "
            "can be looked at; nothing here is removed.</p>"
        )
    for number, pair in enumerate(plan.related[:RELATED_SHOWN], start=1):
        parts.append(
            f"<section class='group related' id='related-{number}'><h2>Related {number} · "
            f"{html.escape(str(pair.get('reason', '')))}</h2><div class='files'>"
        )
        for path in (pair["a"], pair["b"]):
            parts.append(_related_figure(Path(path), thumbnail_side))
        parts.append("</div></section>")
    if len(plan.related) > RELATED_SHOWN:
        parts.append(f"<p>… and {len(plan.related) - RELATED_SHOWN} more (see --json)</p>")
    parts.append("</body></html>")
    return "".join(parts)


def check_report_path(path: Path) -> Path:
    """Where the report may go: never over a photo or any file that is not an earlier dedup
    report (``--html`` naming a file in the folder must not destroy it)."""
    path = path.expanduser()
    if is_image_name(path.name):
        raise UsageError(f"--html {path} has an image file name; give the report a .html name")
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise UsageError(f"--html {path} is not a plain file; choose another path")
    if path.exists():
        with open(path, "rb") as handle:
            head = handle.read(4096)
        if GENERATOR.encode() not in head:
            raise UsageError(
                f"--html {path} exists and is not a dedup report; refusing to overwrite it"
            )
    return path


def write_html(plan: Plan, path: Path, title: str = "dedup report") -> Path:
    """Write the report atomically (a half-written report never replaces a good one), only
    where ``check_report_path`` allows."""
    path = check_report_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(render_html(plan, title))
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path
