"""``dedup review`` in a real browser: Debian's Chromium driven by Playwright against a live
server on a folder of real photos. Screenshots go to ``test-artifacts/``."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dedup_cli.api import EmbedOptions, Store, default_db_path, find_duplicates, get_spec
from dedup_cli.review.session import ReviewSession
from dedup_cli.review.web import WebReview, prepare_server

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")


def _live(review: WebReview) -> Iterator[str]:
    server, sock, url = prepare_server(review)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        try:
            yield launched
        finally:
            launched.close()


def wait_until(page: Any, expression: str, timeout: float = 15.0) -> None:
    """Poll ``expression`` in the page (``page.wait_for_function`` evaluates a string,
    which the page's Content-Security-Policy rightly forbids)."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"timed out waiting for {expression}"
        time.sleep(0.1)


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=False)


def test_review_resolve_apply_and_undo_in_chromium(
    browser: Any, library: Path, tmp_path: Path
) -> None:
    hostile = "<img src=x id=pwn onerror=alert(1)>.jpg"  # a name is text, never markup
    (library / hostile).write_bytes((library / "coffee.jpg").read_bytes())
    before = {p: p.read_bytes() for p in library.rglob("*") if p.is_file()}
    quarantine = tmp_path / "quarantine"
    with Store(default_db_path(library)) as store:
        result = find_duplicates(
            library, store, get_spec("effnet"), EmbedOptions(device="cpu", workers=0)
        )
        review = WebReview(ReviewSession(result.plan), [store])
        groups = [g for g in review.session.groups if g.related is None]
        assert len(groups) >= 3
        for url in _live(review):
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(url)
            page.wait_for_selector("section.group")
            # The token left the address bar, and no cookie holds it.
            assert "token" not in page.url and page.context.cookies() == []
            # The groups render with their pictures (thumbnails decoded by the browser).
            assert page.locator("#groups section.group").count() == len(groups)
            wait_until(
                page,
                "[...document.querySelectorAll('#groups img')]"
                ".every(i => i.complete && i.naturalWidth > 0)",
            )
            assert page.locator("#groups figure.keeper").count() == len(groups)
            assert page.evaluate("document.getElementById('pwn') === null")
            assert hostile in page.inner_text("#groups")
            shot(page, "review-groups.png")

            # Keys: choose the second file of the current group and make it the keeper.
            first = page.locator("#groups section.group").first
            number = int(first.get_attribute("data-id"))
            page.keyboard.press("2")
            page.keyboard.press("Enter")
            page.wait_for_selector(f"#group-{number} figure.keeper[data-index='1']")
            assert review.session.groups[number].keeper == 1
            assert 1 not in review.session.groups[number].remove

            # Next group: "not duplicates"; it survives a reload.
            page.keyboard.press("j")
            second = page.locator("#groups section.group.current")
            rejected = int(second.get_attribute("data-id"))
            assert rejected != number
            page.keyboard.press("n")
            page.wait_for_selector(f"#group-{rejected}.not-duplicates")
            page.reload()
            page.wait_for_selector(f"#group-{rejected}.not-duplicates")
            assert page.locator(f"#group-{rejected} .state").inner_text() == "not duplicates"
            assert page.locator(f"#group-{number} figure.keeper").get_attribute("data-index") == "1"

            # Compare the chosen file with the keeper at full size, then the difference view.
            page.locator(f"#group-{number} img").nth(0).click()
            page.wait_for_selector("#compare:not([hidden]) #panes img")
            wait_until(
                page,
                "[...document.querySelectorAll('#panes img')]"
                ".every(i => i.complete && i.naturalWidth > 0)",
            )
            page.mouse.move(350, 450)  # inside the left pane
            page.mouse.wheel(0, -300)
            wait_until(
                page, "document.querySelector('#panes img').style.transform.includes('1.25')"
            )
            transforms = page.eval_on_selector_all(
                "#panes img", "imgs => imgs.map(i => i.style.transform)"
            )
            assert len(transforms) == 2 and transforms[0] == transforms[1]
            assert "scale(1.25)" in transforms[0]
            shot(page, "review-compare.png")
            page.keyboard.press("d")
            page.keyboard.press("d")
            page.wait_for_selector("#panes img.over")
            shot(page, "review-difference.png")
            page.keyboard.press("Escape")

            # Accept all remaining, Apply a move: exactly the chosen files go.
            page.keyboard.press("Shift+A")
            wait_until(page, "document.querySelector('#message').textContent.includes('accepted')")
            expected = {
                Path(r.file.absolute) for g in review.session.result(True).groups for r in g.remove
            }
            assert expected and Path(review.session.groups[number].files[1].absolute) not in (
                expected
            )
            page.click("#apply")
            page.wait_for_selector("#dialog:not([hidden])")
            page.select_option("#action", "move")
            page.fill("#to", str(quarantine))
            shot(page, "review-apply.png")
            page.click("#dialog-ok")
            page.wait_for_selector("#apply-summary")
            summary = page.inner_text("#apply-summary")
            assert f"move {len(expected)} file(s), 0 skipped, 0 failed" in summary, summary
            gone = {p for p in before if not p.exists()}
            assert gone == expected
            shot(page, "review-applied.png")
            page.click("#dialog-cancel")

            # Undo puts every file back, byte for byte.
            page.click("#runs button.undo")
            wait_until(page, "document.querySelector('#message').textContent.includes('undone')")
            assert {p: p.read_bytes() for p in before} == before
            shot(page, "review-undone.png")
            page.close()


def test_a_large_plan_draws_its_cards_a_batch_at_a_time(browser: Any, tmp_path: Path) -> None:
    """Thousands of groups: the first cards come at once, more as the reviewer scrolls,
    and moving past the drawn ones draws them."""
    from dedup_cli.core.files import FileInfo
    from dedup_cli.core.plan import Plan, PlannedGroup, Removal

    root = tmp_path / "many"
    root.mkdir()
    plan = Plan(root, "effnet", 0.9, "quality", roots=[root])
    for k in range(230):
        files = []
        for name in (f"p{k}.jpg", f"p{k} (1).jpg"):
            path = root / name
            path.write_bytes(b"\xff\xd8 not decoded here")
            files.append(FileInfo(name, path, path.stat().st_size, 0, f"h{k}", 8, 8, root))
        plan.groups.append(PlannedGroup(files[0], (Removal(files[1], 1.0, "exact"),)))
    with Store(tmp_path / "db.sqlite") as store:
        review = WebReview(ReviewSession(plan), [store])
        for url in _live(review):
            page = browser.new_page(viewport={"width": 1200, "height": 800})
            page.goto(url)
            page.wait_for_selector("section.group")
            assert page.locator("#groups section.group").count() == 100
            page.locator("#more").scroll_into_view_if_needed()
            wait_until(page, "document.querySelectorAll('#groups section.group').length >= 200")
            for _ in range(205):
                page.keyboard.press("j")
            wait_until(page, "document.querySelectorAll('#groups section.group').length === 230")
            # Every group frees as much, so they stand in plan order: the 206th is current.
            current = page.locator("#groups section.group.current")
            assert current.count() == 1 and current.get_attribute("data-id") == "205"
            page.close()
