"""Review: the session's edits, the Textual gallery driven by key presses, remembered
"not duplicates" decisions, and nothing removed when a review is cancelled."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from typer.testing import CliRunner

from dedup_cli.cli import app
from dedup_cli.embed.pipeline import EmbedOptions
from dedup_cli.jobs.find import find_duplicates
from dedup_cli.models import get_spec
from dedup_cli.review.session import ReviewSession
from dedup_cli.review.terminal import ReviewApp
from dedup_cli.store import Store

runner = CliRunner()


def plan_for(library: Path):  # type: ignore[no-untyped-def]
    with Store(library / "image_database.db") as store:
        return find_duplicates(
            library, store, get_spec("effnet"), EmbedOptions(device="cpu", workers=0)
        ).plan


def group_named(session: ReviewSession, name: str) -> int:
    for index, group in enumerate(session.groups):
        if any(f.path.endswith(name) for f in group.files):
            return index
    raise AssertionError(name)


def test_session_edits_and_result(library: Path) -> None:
    plan = plan_for(library)
    session = ReviewSession(plan)
    session.index = group_named(session, "coffee.jpg")
    session.selected = 1
    session.make_keeper()  # the re-encoded copy stays; the old keeper is kept too
    result = session.result()
    coffee = [g for g in result.groups if g.keep.path.endswith("coffee_q40.jpg")]
    assert coffee == [] or not coffee[0].remove
    session.selected = 0
    session.toggle()  # now remove the original
    group = next(g for g in session.result().groups if g.keep.path.endswith("coffee_q40.jpg"))
    assert [r.file.path for r in group.remove] == ["coffee.jpg"]
    session.toggle(position=1)  # the keeper can never be marked for removal
    assert 1 not in session.group.remove
    session.cancel()
    assert session.result().groups == []


def test_terminal_gallery_driven_by_keys(library: Path) -> None:
    plan = plan_for(library)
    session = ReviewSession(plan)
    first = session.groups[0]
    keeper_before = first.files[first.keeper].path

    async def drive() -> None:
        app = ReviewApp(session)
        async with app.run_test(size=(120, 40)) as pilot:
            cards = app.query(".card")
            assert [c.has_class("keeper") for c in cards] == [True] + [False] * (len(cards) - 1)
            assert all(c.has_class("remove") for c in list(cards)[1:])
            assert len(app.query(".thumb")) == len(cards)
            await pilot.press("down", "k")  # group 1: the copy becomes the keeper
            cards = list(app.query(".card"))
            assert cards[1].has_class("keeper") and cards[1].has_class("selected")
            assert not cards[0].has_class("remove")
            await pilot.press("right", "down", "space")  # group 2: keep its copy
            await pilot.press("right", "n")  # group 3: not duplicates
            await pilot.press("enter")

    asyncio.run(drive())
    assert session.finished and not session.cancelled
    assert session.groups[0].files[session.groups[0].keeper].path != keeper_before
    assert session.groups[1].remove == set()
    assert session.groups[2].not_duplicates
    # Group 1 lost its only removal (old keeper kept), group 2 keeps its copy, group 3 is
    # "not duplicates": only the fourth group is left to act on.
    assert len(session.result().groups) == len(plan.groups) - 3


def test_escape_cancels_and_nothing_is_planned(library: Path) -> None:
    session = ReviewSession(plan_for(library))

    async def drive() -> None:
        async with ReviewApp(session).run_test() as pilot:
            await pilot.press("space", "escape")

    asyncio.run(drive())
    assert session.cancelled and session.result().groups == []


def test_not_duplicates_are_remembered_across_renames(library: Path) -> None:
    plan = plan_for(library)
    session = ReviewSession(plan)
    session.index = group_named(session, "astronaut.jpg")
    session.toggle_not_duplicates()
    with Store(library / "image_database.db") as store:
        for hashes in session.not_duplicate_groups():
            store.remember_not_duplicates(hashes)
    (library / "trip" / "astronaut_small.jpg").rename(library / "renamed_astro.jpg")
    result = runner.invoke(app, ["find", str(library), "--json", "--workers", "0"])
    doc = json.loads(result.stdout)
    names = {Path(p).name for g in doc["groups"] for p in [g["keep"], *g["remove"]]}
    assert "renamed_astro.jpg" not in names and "astronaut.jpg" not in names
    assert len(doc["groups"]) == len(plan.groups) - 1


def test_cancelled_review_removes_nothing_even_with_yes(library: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import dedup_cli.review.terminal as terminal

    def cancel(session: ReviewSession) -> ReviewSession:
        session.cancel()
        return session

    monkeypatch.setattr(terminal, "review_in_terminal", cancel)

    def images() -> list[str]:
        return sorted(p.name for p in library.rglob("*") if p.suffix in (".jpg", ".png"))

    before = images()
    result = runner.invoke(
        app,
        [
            "find",
            str(library),
            "--json",
            "--workers",
            "0",
            "--review",
            "terminal",
            "--action",
            "delete",
            "--yes",
        ],
    )
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["review"]["cancelled"] is True and doc["action"] is None
    assert images() == before


def test_reviewed_plan_is_what_gets_carried_out(library: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import dedup_cli.review.terminal as terminal

    def keep_coffee_copy(session: ReviewSession) -> ReviewSession:
        session.index = group_named(session, "coffee.jpg")
        session.toggle(position=1)  # keep the q40 copy after all
        session.finish()
        return session

    monkeypatch.setattr(terminal, "review_in_terminal", keep_coffee_copy)
    result = runner.invoke(
        app,
        [
            "find",
            str(library),
            "--json",
            "--workers",
            "0",
            "--review",
            "terminal",
            "--action",
            "delete",
            "--yes",
        ],
    )
    doc = json.loads(result.stdout)
    removed = {Path(d["path"]).name for d in doc["action"]["done"]}
    assert (
        "coffee_q40.jpg" not in removed and (library / "trip" / "day1" / "coffee_q40.jpg").exists()
    )
    assert removed == {"astronaut_small.jpg", "chelsea_copy.jpg", "rocket_crop.png"}


def test_the_reviewed_plan_is_listed_before_the_confirmation(library: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """After the gallery (driven by its keys) makes another file a keeper and marks a group
    "not duplicates", the listing printed right before the confirmation is the reviewed
    plan: the new keeper, and no trace of the group that was dropped."""
    import dedup_cli.cli.acting as acting
    import dedup_cli.review.terminal as terminal

    picked: dict[str, str] = {}

    def review_with_keys(session: ReviewSession) -> ReviewSession:
        coffee = group_named(session, "coffee.jpg")
        chelsea = group_named(session, "chelsea.jpg")

        async def drive() -> None:
            async with ReviewApp(session).run_test(size=(120, 40)) as pilot:
                for _ in range(coffee):
                    await pilot.press("right")
                await pilot.press(
                    "down", "k", "down", "space"
                )  # the copy keeps, the original stays
                await pilot.press("left" if chelsea < coffee else "right")
                for _ in range(abs(chelsea - coffee) - 1):
                    await pilot.press("left" if chelsea < coffee else "right")
                await pilot.press("n", "enter")

        asyncio.run(drive())
        group = session.groups[coffee]
        picked["keeper"] = Path(group.files[group.keeper].path).name
        return session

    asked: list[str] = []
    real_confirm = acting.confirm

    def confirm(*args, **kwargs):  # type: ignore[no-untyped-def]
        asked.append("asked")
        return real_confirm(*args, **kwargs)

    monkeypatch.setattr(terminal, "review_in_terminal", review_with_keys)
    monkeypatch.setattr(acting, "confirm", confirm)
    result = runner.invoke(
        app,
        [
            "find",
            str(library),
            "--workers",
            "0",
            "--review",
            "terminal",
            "--action",
            "trash",
            "--yes",
        ],
    )
    assert result.exit_code == 0, result.stderr
    assert asked and picked["keeper"] == "coffee_q40.jpg"
    proposed, reviewed = result.stdout.split("the reviewed plan", 1)
    listing, summary = reviewed.split("run ", 1)  # the action's summary follows the prompt
    assert "chelsea" in proposed and "chelsea" not in listing  # marked not duplicates
    words = " ".join(listing.split())
    assert "keep trip/day1/coffee_q40.jpg" in words and "remove coffee.jpg" in words
    assert "keep coffee.jpg" in " ".join(proposed.split())  # the listing before the review
    assert "chosen in review" in listing and "trash 3 file(s)" in summary
    assert (library / "chelsea.jpg").exists() and (library / "trip" / "chelsea_copy.jpg").exists()
