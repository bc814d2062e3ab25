"""What the browser reviewer costs on a large plan: the plan document, a thumbnail, a
decision, and the page itself in Chromium (first cards drawn, a key press).

    python benchmarks/bench_review.py --groups 5000

Writes ``groups`` x 2 small JPEGs (copies of scikit-image photos under new names) to a
temporary folder, builds the plan directly (no model: this measures the reviewer, not the
proof), serves it on 127.0.0.1 and times requests with httpx and the page with Playwright
driving Debian's Chromium (skipped when either is missing).
"""

from __future__ import annotations

import argparse
import io
import resource
import shutil
import tempfile
import threading
import time
from pathlib import Path

import httpx
from PIL import Image

from dedup_cli.core.files import FileInfo
from dedup_cli.core.plan import Plan, PlannedGroup, Removal
from dedup_cli.review.session import ReviewSession
from dedup_cli.review.web import WebReview, prepare_server
from dedup_cli.store import Store


def write_folder(root: Path, groups: int) -> Plan:
    import skimage.data as data

    sources = []
    for name in ("astronaut", "coffee", "rocket", "chelsea"):
        image = Image.fromarray(getattr(data, name)()).convert("RGB")
        image.thumbnail((480, 480))
        out = io.BytesIO()
        image.save(out, "JPEG", quality=85)
        sources.append((out.getvalue(), image.size))
    plan = Plan(root, "effnet", 0.75, "quality", roots=[root])
    for k in range(groups):
        folder = root / f"{k // 500:03d}"
        folder.mkdir(exist_ok=True)
        payload, (width, height) = sources[k % len(sources)]
        files = []
        for suffix in ("", " (1)"):
            path = folder / f"photo_{k:05d}{suffix}.jpg"
            path.write_bytes(payload)
            stat = path.stat()
            files.append(
                FileInfo(
                    path.relative_to(root).as_posix(),
                    path,
                    stat.st_size,
                    stat.st_mtime_ns,
                    f"h{k}{suffix}",
                    width,
                    height,
                    root,
                )
            )
        plan.groups.append(
            PlannedGroup(files[0], (Removal(files[1], 1.0, "exact"),), "no copy mark")
        )
    return plan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=5000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dedup-review-") as tmp:
        root = Path(tmp) / "photos"
        root.mkdir()
        plan = write_folder(root, args.groups)
        with Store(Path(tmp) / "db.sqlite") as store:
            review = WebReview(ReviewSession(plan), [store])
            server, sock, url = prepare_server(review)
            thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
            thread.start()
            while not server.started:
                time.sleep(0.05)
            token = url.split("token=")[1]
            base = url.split("/?")[0]
            headers = {"X-Dedup-Token": token}
            with httpx.Client(base_url=base, headers=headers, timeout=600) as client:
                for attempt in ("first", "again"):
                    started = time.perf_counter()
                    response = client.get("/api/plan")
                    seconds = time.perf_counter() - started
                    print(
                        f"/api/plan ({attempt}): {seconds:.2f} s, {len(response.content) / 1e6:.1f} MB "
                        f"for {args.groups} groups, {2 * args.groups} files"
                    )
                for attempt in ("made", "cached"):
                    started = time.perf_counter()
                    client.get("/api/image/0/0")
                    print(f"thumbnail ({attempt}): {(time.perf_counter() - started) * 1000:.1f} ms")
                started = time.perf_counter()
                client.post("/api/decision", json={"group": 1, "accepted": True})
                print(f"decision saved: {(time.perf_counter() - started) * 1000:.1f} ms")
            chromium = shutil.which("chromium")
            try:
                from playwright.sync_api import sync_playwright
            except ImportError:
                chromium = None
            if chromium:
                with sync_playwright() as playwright:
                    browser = playwright.chromium.launch(
                        executable_path=chromium,
                        args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
                    )
                    page = browser.new_page(viewport={"width": 1400, "height": 900})
                    started = time.perf_counter()
                    page.goto(url)
                    page.wait_for_selector("section.group")
                    print(f"page: first cards drawn after {time.perf_counter() - started:.2f} s")
                    for key in ("j", "2", "x"):
                        started = time.perf_counter()
                        page.keyboard.press(key)
                        page.evaluate("new Promise(r => requestAnimationFrame(() => r(1)))")
                        print(f"key {key}: {(time.perf_counter() - started) * 1000:.0f} ms")
                    browser.close()
            server.should_exit = True
            thread.join(timeout=10)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"server process peak memory: {peak:.0f} MB")


if __name__ == "__main__":
    main()
