"""The HTML report: self-contained, every group and image shown, rendered by headless Chromium."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dedup_cli.cli import app

runner = CliRunner()
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


class _Figures(HTMLParser):
    """Collects figures (role, path) and image sources of the report."""

    def __init__(self) -> None:
        super().__init__()
        self.figures: list[tuple[str, str]] = []
        self.images: list[str] = []
        self.sections: list[str] = []
        self.external: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "figure":
            self.figures.append((a.get("class") or "", a.get("data-path") or ""))
        elif tag == "img":
            self.images.append(a.get("src") or "")
        elif tag == "section":
            self.sections.append(a.get("id") or "")
        for key in ("src", "href"):
            value = a.get(key)
            if value and not value.startswith("data:"):
                self.external.append(value)


def report_for(library: Path, tmp_path: Path) -> tuple[dict, Path]:  # type: ignore[type-arg]
    html = tmp_path / "report" / "dupes.html"
    html.parent.mkdir(exist_ok=True)
    result = runner.invoke(
        app, ["find", str(library), "--json", "--workers", "0", "--html", str(html)]
    )
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout), html


def test_report_shows_every_group_and_image_offline(library: Path, tmp_path: Path) -> None:
    doc, html = report_for(library, tmp_path)
    assert doc["html"] == str(html) and doc["action"] is None
    parser = _Figures()
    parser.feed(html.read_text(encoding="utf-8"))
    expected = [("keep", g["keep"]) for g in doc["groups"]]
    expected += [("remove", r) for g in doc["groups"] for r in g["remove"]]
    assert sorted(parser.figures) == sorted(expected)
    assert parser.sections == [f"group-{n}" for n in range(1, len(doc["groups"]) + 1)]
    assert len(parser.images) == len(expected)
    assert all(src.startswith("data:image/jpeg;base64,") for src in parser.images)
    assert parser.external == []  # nothing to fetch: the page works offline and in a mail
    text = html.read_text(encoding="utf-8")
    assert f"<b id='n-remove'>{doc['summary']['files_to_remove']}</b>" in text
    assert (library / "trip" / "chelsea_copy.jpg").exists()  # a report removes nothing


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def test_report_renders_in_headless_chromium(library: Path, tmp_path: Path) -> None:
    browser = _chromium()
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("CI must install Debian's chromium for this test (see .ci/run)")
        pytest.skip("chromium is not installed")
    doc, html = report_for(library, tmp_path)
    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "report.png"
    screenshot.unlink(missing_ok=True)
    flags = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--hide-scrollbars",
    ]
    dom = subprocess.run(
        [*flags, "--dump-dom", html.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    parser = _Figures()
    parser.feed(dom)
    assert len(parser.figures) == len(doc["groups"]) + doc["summary"]["files_to_remove"]
    subprocess.run(
        [*flags, f"--screenshot={screenshot}", "--window-size=1280,1600", html.as_uri()],
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert screenshot.exists() and screenshot.stat().st_size > 10_000
