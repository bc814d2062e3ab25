"""The browser reviewer's server (``review.web``) through Starlette's test client: the token,
what can be read through it, decisions kept in the database, Apply and Undo."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient
from typer.testing import CliRunner

from dedup_cli.api import EmbedOptions, Store, default_db_path, find_duplicates, get_spec
from dedup_cli.cli import app as cli_app
from dedup_cli.review.session import ReviewSession
from dedup_cli.review.web import WebReview, make_app

TOKEN = "test-token-1234"
HEADERS = {"X-Dedup-Token": TOKEN}


def signed(group: int, position: int, full: bool = False) -> str:
    from dedup_cli.review.web import image_signature

    extra = "full=1&" if full else ""
    return f"/api/image/{group}/{position}?{extra}s={image_signature(TOKEN, group, position, full)}"


def apply_move(client: TestClient, to: str, *, accept_all: bool = True) -> Any:
    """Accept every group (unless told not to), then Apply a move to ``to`` with the counts
    the page would have confirmed; the response."""
    if accept_all:
        client.post("/api/accept-all", headers=HEADERS, json={})
    pending = client.get("/api/pending", headers=HEADERS).json()
    confirm = {"files": pending["files"], "bytes": pending["bytes"]}
    return client.post(
        "/api/apply", headers=HEADERS, json={"action": "move", "to": to, "confirm": confirm}
    )


def planned(root: Path, store: Store) -> WebReview:
    result = find_duplicates(root, store, get_spec("effnet"), EmbedOptions(device="cpu", workers=0))
    return WebReview(ReviewSession(result.plan), [store])


@pytest.fixture
def served(library: Path) -> Iterator[tuple[TestClient, WebReview, Path]]:
    with Store(default_db_path(library)) as store:
        review = planned(library, store)
        with TestClient(make_app(review, TOKEN)) as client:
            yield client, review, library


def test_every_request_needs_the_token(served: tuple[TestClient, WebReview, Path]) -> None:
    client, _, _ = served
    # The page and its script hold no secret: they are served, and the token is not in them.
    page = client.get("/")
    assert page.status_code == 200 and TOKEN not in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert client.get("/static/review.js").status_code == 200
    # Everything else needs the token in a header; no cookie is ever set or read (a cookie
    # would go to every port of 127.0.0.1).
    assert client.get("/api/plan").status_code == 403
    client.cookies.set("dedup_token", TOKEN)
    assert client.get("/api/plan").status_code == 403
    client.cookies.clear()
    assert client.get("/api/plan", params={"token": TOKEN}).status_code == 403
    plan = client.get("/api/plan", headers=HEADERS)
    assert plan.status_code == 200 and "set-cookie" not in plan.headers
    decided = client.post("/api/decision", json={"group": 0, "not_duplicates": True})
    assert decided.status_code == 403
    plain = client.post(
        "/api/decision", content="group=0", headers={**HEADERS, "Content-Type": "text/plain"}
    )
    assert plain.status_code == 415
    # Pictures (an <img> sends no header) need the signature the plan document hands out.
    file = plan.json()["groups"][0]["files"][0]
    assert client.get(file["thumb"]).status_code == 200
    assert client.get(file["full"]).status_code == 200
    assert client.get("/api/image/0/0").status_code == 403
    assert client.get("/api/image/0/0?s=" + "0" * 32).status_code == 403
    other = plan.json()["groups"][0]["files"][1]["thumb"].split("?")[1]
    assert client.get(f"/api/image/0/0?{other}").status_code == 403  # another file's
    assert client.get(file["thumb"].replace("?", "?full=1&")).status_code == 403
    assert client.get(file["thumb"], headers=HEADERS).status_code == 200


def test_another_host_name_is_refused(library: Path) -> None:
    """DNS rebinding: a page on evil.example resolving to 127.0.0.1 sends its own Host."""
    with Store(default_db_path(library)) as store:
        review = planned(library, store)
        app = make_app(review, TOKEN, allowed_hosts=["127.0.0.1:8123"])
        with TestClient(app) as client:
            assert client.get("/api/plan", headers=HEADERS).status_code == 403
            ok = client.get("/api/plan", headers={**HEADERS, "Host": "127.0.0.1:8123"})
            assert ok.status_code == 200


def test_only_files_of_the_plan_are_served(
    served: tuple[TestClient, WebReview, Path], tmp_path: Path
) -> None:
    client, review, _library = served
    group = review.session.groups[0]
    full = client.get(signed(0, 0, True))
    assert full.status_code == 200 and full.content == Path(group.files[0].absolute).read_bytes()
    thumb = client.get(signed(0, 0))
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    for bad in (signed(0, 99), signed(99, 0), signed(-1, 0)):
        assert client.get(bad).status_code == 404, bad
    for bad in (
        "/api/image/0/x",
        "/api/image/../../../etc/passwd",
        "/api/image/0/..%2F..%2Fetc%2Fpasswd",
        "/static/../web.py",
        "/static/index.html",
    ):
        assert client.get(bad, headers=HEADERS).status_code in (403, 404), bad
    # A planned file swapped for a symlink to a file outside the folder is not followed.
    secret = tmp_path / "secret.jpg"
    secret.write_bytes(b"not for the browser")
    target = Path(group.files[1].absolute)
    target.unlink()
    target.symlink_to(secret)
    assert client.get(signed(0, 1, True)).status_code == 404
    assert client.get(signed(0, 1)).status_code == 404


def test_a_folder_on_the_way_swapped_for_a_symlink_is_not_followed(
    served: tuple[TestClient, WebReview, Path], tmp_path: Path
) -> None:
    client, review, _library = served
    number, position = next(
        (g, k)
        for g, group in enumerate(review.session.groups)
        for k, f in enumerate(group.files)
        if "/" in review.session.plan.shown(f)
    )
    file = review.session.groups[number].files[position]
    folder = Path(file.absolute).parent
    outside = tmp_path / "outside"
    shutil.copytree(folder, outside)
    shutil.rmtree(folder)
    folder.symlink_to(outside, target_is_directory=True)
    assert client.get(signed(number, position, True)).status_code == 404


def test_decisions_are_saved_as_made_and_come_back(
    served: tuple[TestClient, WebReview, Path],
) -> None:
    client, _review, library = served
    plan = client.get("/api/plan", headers=HEADERS).json()
    first = plan["groups"][0]
    assert first["keeper"] == 0 and first["remove"] == list(range(1, len(first["files"])))
    chosen = client.post(
        "/api/decision", headers=HEADERS, json={"group": 0, "keeper": 1, "remove": [0]}
    )
    assert chosen.status_code == 200 and chosen.json()["keeper"] == 1
    assert chosen.json()["remove"] == [0]
    rejected = client.post(
        "/api/decision", headers=HEADERS, json={"group": 1, "not_duplicates": True}
    )
    assert rejected.json()["not_duplicates"] is True and rejected.json()["bytes_to_free"] == 0
    # Bad decisions change nothing.
    for bad in ({"group": 0, "keeper": 7}, {"group": 0, "remove": [9]}, {"group": 42}, {}):
        assert client.post("/api/decision", headers=HEADERS, json=bad).status_code == 400
    # A new server on the same database (a reload, a crash, a new `dedup review`).
    with Store(default_db_path(library)) as store:
        again = planned(library, store)
        with TestClient(make_app(again, TOKEN)) as second:
            groups = second.get("/api/plan", headers=HEADERS).json()["groups"]
    assert groups[0]["keeper"] == 1 and groups[0]["remove"] == [0]
    assert groups[1]["not_duplicates"] is True
    assert [g["keeper"] for g in groups[2:]] == [g["keeper"] for g in plan["groups"][2:]]


def test_a_saved_decision_naming_other_files_is_ignored(library: Path) -> None:
    """The decisions table is a cache, not a witness: a row whose keeper is not a member
    of the group is dropped, whatever it says."""
    from dedup_cli.review.decisions import group_key

    with Store(default_db_path(library)) as store:
        review = planned(library, store)
        group = review.session.groups[0]
        store.save_review_decision(
            group_key(group),
            {"keeper": "/etc/passwd", "remove": [str(f.absolute) for f in group.files]},
        )
        again = planned(library, store)
    assert again.session.groups[0].keeper == 0
    assert again.session.groups[0].remove == set(range(1, len(group.files)))


def test_related_pairs_are_shown_and_never_edited(tmp_path: Path, photos) -> None:  # type: ignore[no-untyped-def]
    from dedup_cli.core.plan import Plan

    root = tmp_path / "r"
    root.mkdir()
    for name in ("a.jpg", "b.jpg"):
        (root / name).write_bytes(b"x")
    plan = Plan(root, "effnet", 0.9, "quality")
    plan.related = [{"a": str(root / "a.jpg"), "b": str(root / "b.jpg"), "reason": "an overlay"}]
    with Store(default_db_path(root)) as store:
        review = WebReview(ReviewSession(plan), [store])
        with TestClient(make_app(review, TOKEN)) as client:
            groups = client.get("/api/plan", headers=HEADERS).json()["groups"]
            assert groups[0]["kind"] == "related" and groups[0]["remove"] == []
            changed = client.post(
                "/api/decision", headers=HEADERS, json={"group": 0, "remove": [1], "accepted": True}
            )
            assert changed.status_code == 400
            client.post("/api/accept-all", headers=HEADERS, json={})
            pending = client.get("/api/pending", headers=HEADERS).json()
    assert pending["files"] == 0 and review.session.groups[0].accepted is False


def moved_names(quarantine: Path) -> set[str]:
    return {p.relative_to(quarantine).as_posix() for p in quarantine.rglob("*") if p.is_file()}


def test_apply_carries_out_what_find_action_would_and_undo_restores(
    library: Path, tmp_path: Path
) -> None:
    twin = tmp_path / "twin"
    shutil.copytree(library, twin)
    before = {p: p.read_bytes() for p in library.rglob("*") if p.is_file()}
    # find --action move on a twin of the folder, as the plan proposed.
    done = CliRunner().invoke(
        cli_app,
        ["find", str(twin), "--action", "move", "--to", str(tmp_path / "q-find"), "--yes"],
    )
    assert done.exit_code == 0, done.stderr
    with Store(default_db_path(library)) as store:
        review = planned(library, store)
        with TestClient(make_app(review, TOKEN)) as client:
            client.post("/api/accept-all", headers=HEADERS, json={})
            pending = client.get("/api/pending", headers=HEADERS).json()
            confirm = {"files": pending["files"], "bytes": pending["bytes"]}
            # Delete is not offered unless the server allows it; a stale count is refused.
            refused = client.post(
                "/api/apply", headers=HEADERS, json={"action": "delete", "confirm": confirm}
            )
            assert refused.status_code == 400
            stale = client.post(
                "/api/apply",
                headers=HEADERS,
                json={
                    "action": "move",
                    "to": str(tmp_path / "q-web"),
                    "confirm": {"files": confirm["files"] + 1, "bytes": confirm["bytes"]},
                },
            )
            assert stale.status_code == 409 and not (tmp_path / "q-web").exists()
            inside = client.post(
                "/api/apply",
                headers=HEADERS,
                json={"action": "move", "to": str(library / "q"), "confirm": confirm},
            )
            assert inside.status_code == 400 and not (library / "q").exists()
            applied = client.post(
                "/api/apply",
                headers=HEADERS,
                json={"action": "move", "to": str(tmp_path / "q-web"), "confirm": confirm},
            )
            assert applied.status_code == 200, applied.text
            result = applied.json()
            assert len(result["done"]) == pending["files"] and not result["skipped"]
            assert moved_names(tmp_path / "q-web") == moved_names(tmp_path / "q-find")
            # Applied groups are not carried out twice.
            assert client.get("/api/pending", headers=HEADERS).json()["files"] == 0
            undone = client.post("/api/undo", headers=HEADERS, json={"run_id": result["run_id"]})
            assert undone.status_code == 200, undone.text
            assert len(undone.json()["restored"]) == pending["files"]
            again = client.post("/api/undo", headers=HEADERS, json={"run_id": result["run_id"]})
            assert again.status_code == 409
            unknown = client.post("/api/undo", headers=HEADERS, json={"run_id": "x"})
            assert unknown.status_code == 400
    after = {p: p.read_bytes() for p in library.rglob("*") if p.is_file() and p in before}
    assert after == before


def test_only_accepted_groups_are_applied(library: Path, tmp_path: Path) -> None:
    with Store(default_db_path(library)) as store:
        review = planned(library, store)
        distinct = next(
            k
            for k, g in enumerate(review.session.groups)
            if k and len({f.content_hash for f in g.files}) > 1
        )
        with TestClient(make_app(review, TOKEN)) as client:
            client.post("/api/decision", headers=HEADERS, json={"group": 0, "accepted": True})
            client.post(
                "/api/decision", headers=HEADERS, json={"group": distinct, "not_duplicates": True}
            )
            pending = client.get("/api/pending", headers=HEADERS).json()
            group = review.session.groups[0]
            assert pending["files"] == len(group.remove) and pending["not_duplicates"] == 1
            confirm = {"files": pending["files"], "bytes": pending["bytes"]}
            applied = client.post(
                "/api/apply",
                headers=HEADERS,
                json={"action": "move", "to": str(tmp_path / "q"), "confirm": confirm},
            )
            assert applied.status_code == 200
            rejected = review.session.groups[distinct]
        hashes = [f.content_hash for f in rejected.files if f.content_hash]
        assert (min(hashes[:2]), max(hashes[:2])) in store.not_duplicate_pairs()
    moved = {os.path.basename(p) for p in moved_names(tmp_path / "q")}
    assert moved == {Path(group.files[i].absolute).name for i in group.remove}


def test_the_page_and_its_scripts_are_served_with_no_outside_resource(
    served: tuple[TestClient, WebReview, Path],
) -> None:
    client, _, _ = served
    client.get(f"/?token={TOKEN}")
    page = client.get("/").text
    script = client.get("/static/review.js").text
    style = client.get("/static/review.css").text
    for text in (page, script, style):
        assert "http://" not in text and "https://" not in text and "//cdn" not in text
    assert "innerHTML" not in script  # names reach the page as text only
    assert json.dumps(TOKEN) not in script


def _start(*args: str) -> tuple[Any, str]:
    """Start ``dedup ARGS`` and read the address it prints."""
    import re
    import subprocess
    import sys

    process = subprocess.Popen(
        [sys.executable, "-m", "dedup_cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200", "BROWSER": "true"},
    )
    assert process.stderr is not None
    for line in process.stderr:
        found = re.search(r"(http://127\.0\.0\.1:\d+/#token=[\w-]+)", line)
        if found:
            return process, found.group(1)
    process.wait(timeout=30)
    raise AssertionError(f"no address printed; exit {process.returncode}")


def _call(url: str, path: str, body: dict[str, Any] | None = None) -> Any:
    import urllib.request
    from urllib.parse import parse_qs, urlsplit

    parts = urlsplit(url)
    token = parse_qs(parts.fragment)["token"][0]
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"{parts.scheme}://{parts.netloc}{path}",
        data=data,
        headers={"X-Dedup-Token": token, "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def test_dedup_review_serves_on_loopback_and_stops_cleanly_on_ctrl_c(library: Path) -> None:
    import signal

    process, url = _start("review", str(library), "--no-open", "--workers", "0")
    try:
        assert url.startswith("http://127.0.0.1:")
        plan = _call(url, "/api/plan")
        assert plan["groups"] and plan["actions"] == ["trash", "move"]  # no delete by default
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
    assert process.returncode == 0


def test_a_bad_port_is_a_usage_error_before_any_work(library: Path) -> None:
    result = CliRunner().invoke(cli_app, ["review", str(library), "--port", "70000"])
    assert result.exit_code == 2 and "--port" in result.stderr
    assert not (library / "image_database.db").exists()


def test_find_review_web_hands_the_accepted_groups_back_to_the_terminal(
    library: Path, tmp_path: Path
) -> None:
    quarantine = tmp_path / "q"
    process, url = _start(
        "find",
        str(library),
        "--review",
        "web",
        "--action",
        "move",
        "--to",
        str(quarantine),
        "--yes",
        "--workers",
        "0",
    )
    try:
        plan = _call(url, "/api/plan")
        assert plan["actions"] == []  # the terminal acts, not the page
        chosen = plan["groups"][0]
        _call(url, "/api/decision", {"group": chosen["id"], "accepted": True})
        _call(url, "/api/finish", {})
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, process.stderr.read() if process.stderr else ""
    expected = {chosen["files"][i]["name"] for i in chosen["remove"]}
    assert {p.name for p in quarantine.rglob("*") if p.is_file()} == expected


def test_a_relative_quarantine_is_refused_and_each_destination_is_named(
    library: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A relative folder would be taken from the server's working folder, which the page
    never shows; the result names where each file went."""
    monkeypatch.chdir(tmp_path)
    with Store(default_db_path(library)) as store:
        review = planned(library, store)
        with TestClient(make_app(review, TOKEN)) as client:
            relative = apply_move(client, "quarantine")
            assert relative.status_code == 400 and "full path" in relative.json()["error"]
            assert not (tmp_path / "quarantine").exists()
            moved = apply_move(client, str(tmp_path / "q")).json()
    assert moved["quarantine"] == str((tmp_path / "q").resolve())
    assert all(Path(d["destination"]).is_relative_to(tmp_path / "q") for d in moved["done"])


def test_pictures_with_one_relative_path_in_two_folders_are_told_apart(
    tmp_path: Path, photos
) -> None:  # type: ignore[no-untyped-def]
    """Same relative path, size and mtime in two folders: the thumbnail cache keys on the
    file itself, so each shows its own picture."""
    from conftest import encode
    from dedup_cli.core.plan import Plan, PlannedGroup, Removal
    from dedup_cli.jobs.find import Folder  # noqa: F401 - the folders of a plan

    roots = [tmp_path / "A", tmp_path / "B"]
    data = [encode(photos["astronaut"], quality=90), encode(photos["coffee"], quality=90)]
    size = max(len(d) for d in data)
    plan = Plan(roots[0], "effnet", 0.9, "quality", roots=roots)
    for root, payload in zip(roots, data):
        root.mkdir()
        path = root / "IMG_0001.jpg"
        path.write_bytes(payload + b"\0" * (size - len(payload)))
        os.utime(path, ns=(1_000_000_000, 1_000_000_000))
        (root / "other.jpg").write_bytes(payload)
    from dedup_cli.core.files import FileInfo

    def info(root: Path, name: str) -> FileInfo:
        path = root / name
        stat = path.stat()
        return FileInfo(name, path, stat.st_size, stat.st_mtime_ns, None, 10, 10, root)

    for root in roots:
        plan.groups.append(
            PlannedGroup(info(root, "IMG_0001.jpg"), (Removal(info(root, "other.jpg"), 1.0, "x"),))
        )
    with Store(tmp_path / "db.sqlite") as store:
        review = WebReview(ReviewSession(plan), [store])
        with TestClient(make_app(review, TOKEN)) as client:
            first, second = client.get(signed(0, 0)).content, client.get(signed(1, 0)).content
    assert first and second and first != second


def test_a_group_whose_files_were_all_skipped_stays_open(library: Path, tmp_path: Path) -> None:
    with Store(default_db_path(library)) as store:
        review = planned(library, store)
        group = review.session.groups[0]
        with TestClient(make_app(review, TOKEN)) as client:
            client.post("/api/decision", headers=HEADERS, json={"group": 0, "accepted": True})
            keeper = Path(group.files[group.keeper].absolute)
            os.utime(keeper, ns=(1, 1))  # the keeper changed since planning: every file skips
            pending = client.get("/api/pending", headers=HEADERS).json()
            result = apply_move(client, str(tmp_path / "q"), accept_all=False).json()
            assert result["skipped"] and not result["done"]
            assert group.applied is None
            assert client.get("/api/pending", headers=HEADERS).json()["files"] == pending["files"]


def test_decisions_take_only_real_indices_and_booleans(
    served: tuple[TestClient, WebReview, Path],
) -> None:
    client, review, _library = served
    last = len(review.session.groups) - 1
    for bad in (
        {"group": -1, "accepted": True},
        {"group": True, "accepted": True},
        {"group": "0", "accepted": True},
        {"group": 0, "accepted": "false"},
        {"group": 0, "not_duplicates": "no"},
        {"group": 0, "keeper": True},
        {"group": 0, "remove": "1"},
    ):
        answer = client.post("/api/decision", headers=HEADERS, json=bad)
        assert answer.status_code == 400, bad
    assert not any(g.accepted or g.not_duplicates for g in review.session.groups)
    assert review.session.groups[last].keeper == 0


def test_a_long_apply_does_not_stop_the_server_answering(
    served: tuple[TestClient, WebReview, Path],
) -> None:
    """Work that waits on the review's lock runs in a worker thread: while the lock is held
    (an Apply of thousands of files), pictures and the plan are still served."""
    import threading

    client, review, _library = served
    waiting = threading.Thread(
        target=lambda: client.get("/api/pending", headers=HEADERS), daemon=True
    )
    with review.lock:
        waiting.start()
        waiting.join(timeout=0.5)
        assert waiting.is_alive()  # held up by the lock, in a worker thread
        assert client.get(signed(0, 0)).status_code == 200
    waiting.join(timeout=10)
    assert not waiting.is_alive()


def test_a_partial_undo_is_reported_and_can_be_run_again(library: Path, tmp_path: Path) -> None:
    with Store(default_db_path(library)) as store:
        review = planned(library, store)
        with TestClient(make_app(review, TOKEN)) as client:
            result = apply_move(client, str(tmp_path / "q")).json()
            blocker = Path(result["done"][0]["path"])
            blocker.write_bytes(b"a new file now sits where the copy was")
            undone = client.post("/api/undo", headers=HEADERS, json={"run_id": result["run_id"]})
            report = undone.json()
            assert report["complete"] is False and report["skipped"] + report["failed"]
            runs = client.get("/api/plan", headers=HEADERS).json()["runs"]
            assert runs[0]["undone"] is False  # still offered: undo again once it is cleared
            blocker.unlink()
            again = client.post("/api/undo", headers=HEADERS, json={"run_id": result["run_id"]})
            assert again.status_code == 200 and again.json()["complete"] is True
            assert blocker.exists()


def test_not_duplicates_is_remembered_when_marked_and_forgotten_when_taken_back(
    library: Path,
) -> None:
    """A reviewer who marks a group and closes the browser without Apply: the next find
    does not propose it again. Taking the mark back forgets it."""
    with Store(default_db_path(library)) as store:
        review = planned(library, store)
        number = next(
            k
            for k, g in enumerate(review.session.groups)
            if len({f.content_hash for f in g.files}) > 1
        )
        hashes = sorted({f.content_hash for f in review.session.groups[number].files})
        with TestClient(make_app(review, TOKEN)) as client:
            client.post(
                "/api/decision", headers=HEADERS, json={"group": number, "not_duplicates": True}
            )
            assert (hashes[0], hashes[1]) in store.not_duplicate_pairs()
            again = planned(library, store)
            assert not any(
                {f.content_hash for f in g.files} == set(hashes) for g in again.session.groups
            )
            client.post(
                "/api/decision", headers=HEADERS, json={"group": number, "not_duplicates": False}
            )
            assert (hashes[0], hashes[1]) not in store.not_duplicate_pairs()


def _hold_lock(root: str, ready: Any, release: Any) -> None:
    from dedup_cli.act.locking import acting_on

    with acting_on([Path(root)]):
        ready.set()
        release.wait(30)


def test_apply_while_another_dedup_acts_on_the_folder_does_nothing(
    library: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import multiprocessing

    monkeypatch.setenv("DEDUP_LOCK_TIMEOUT", "0.5")
    before = {p: p.read_bytes() for p in library.rglob("*") if p.is_file()}
    context = multiprocessing.get_context("spawn")
    ready, release = context.Event(), context.Event()
    holder = context.Process(target=_hold_lock, args=(str(library), ready, release))
    holder.start()
    try:
        assert ready.wait(60)
        with Store(default_db_path(library)) as store:
            review = planned(library, store)
            with TestClient(make_app(review, TOKEN)) as client:
                answer = apply_move(client, str(tmp_path / "q"))
                assert answer.status_code == 409 and "another dedup run" in answer.json()["error"]
                assert client.get("/api/plan", headers=HEADERS).json()["runs"] == []
    finally:
        release.set()
        holder.join(30)
    assert not (tmp_path / "q").exists() or not any((tmp_path / "q").rglob("*.*"))
    after = {p: p.read_bytes() for p in library.rglob("*") if p.is_file() and p in before}
    assert after == before


def test_a_keeper_whose_bytes_rotted_since_the_review_keeps_its_copy(
    library: Path, tmp_path: Path
) -> None:
    """Same size, same mtime, other bytes: the copy is not removed for a damaged keeper."""
    with Store(default_db_path(library)) as store:
        review = planned(library, store)
        number = next(
            k
            for k, g in enumerate(review.session.groups)
            if {f.content_hash for f in g.files} == {g.files[0].content_hash}
        )
        group = review.session.groups[number]
        keeper, copy = Path(group.files[0].absolute), Path(group.files[1].absolute)
        with TestClient(make_app(review, TOKEN)) as client:
            client.post("/api/decision", headers=HEADERS, json={"group": number, "accepted": True})
            stat = keeper.stat()
            data = bytearray(keeper.read_bytes())
            data[len(data) // 2 : len(data) // 2 + 200] = b"\x07" * 200
            keeper.write_bytes(bytes(data))
            os.utime(keeper, ns=(stat.st_atime_ns, stat.st_mtime_ns))
            result = apply_move(client, str(tmp_path / "q"), accept_all=False).json()
    assert [Path(s["path"]) for s in result["skipped"]] == [copy] and not result["done"]
    assert copy.exists()


def test_a_quarantine_reached_through_a_symlink_into_the_folder_is_refused(
    served: tuple[TestClient, WebReview, Path], tmp_path: Path
) -> None:
    client, _review, library = served
    (tmp_path / "looks-outside").symlink_to(library / "trip", target_is_directory=True)
    answer = apply_move(client, str(tmp_path / "looks-outside"))
    assert answer.status_code == 400 and "inside a scanned folder" in answer.json()["error"]
