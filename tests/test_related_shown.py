"""Related pairs (a copy with an overlay or a caption: never removed) are shown wherever the
user looks: the human listing, the HTML report and both reviewers; and the reviewers show
their keys and label similarities against the keeper the reviewer chose."""

from __future__ import annotations

import asyncio
from pathlib import Path

import matplotlib
import pytest
from typer.testing import CliRunner

from conftest import encode
from dedup_cli.cli import app
from dedup_cli.embed.pipeline import EmbedOptions
from dedup_cli.jobs.find import find_duplicates
from dedup_cli.media.transforms import HARD
from dedup_cli.models import get_spec
from dedup_cli.review.html import render_html
from dedup_cli.review.session import ReviewSession
from dedup_cli.review.terminal import ReviewApp
from dedup_cli.store import Store

matplotlib.use("Agg")
runner = CliRunner()


@pytest.fixture
def with_overlay(tmp_path: Path, photos) -> Path:  # type: ignore[no-untyped-def]
    """A photo, its re-encoded copy (a group) and a copy with a sticker (related)."""
    root = tmp_path / "photos"
    root.mkdir()
    photo = photos["astronaut"]
    (root / "original.jpg").write_bytes(encode(photo, quality=92))
    (root / "again.jpg").write_bytes(encode(photo, quality=60))
    (root / "sticker.jpg").write_bytes(HARD["sticker_overlay"](photo)[0])
    return root


def plan_of(root: Path):  # type: ignore[no-untyped-def]
    with Store(root / "image_database.db") as store:
        return find_duplicates(
            root, store, get_spec("effnet"), EmbedOptions(device="cpu", workers=0), threshold=0.5
        ).plan


def test_the_listing_and_the_report_show_related_pairs(with_overlay: Path) -> None:
    result = runner.invoke(app, ["find", str(with_overlay), "--workers", "0", "-t", "0.5"])
    assert result.exit_code == 0, result.stderr
    listing = result.stdout.split("related, kept", 1)[1]
    assert "sticker.jpg" in listing and "original.jpg" in listing
    plan = plan_of(with_overlay)
    assert len(plan.related) == 2 and len(plan.groups) == 1  # the sticker against each copy
    page = render_html(plan)
    related = page.split("id='related'", 1)[1]
    assert "sticker.jpg" in related and related.count('<figure class="related"') == 4
    assert "kept: " in page  # the keeper's reason


def test_the_terminal_gallery_shows_related_pairs_read_only_and_its_keys(
    with_overlay: Path,
) -> None:
    plan = plan_of(with_overlay)
    session = ReviewSession(plan)
    assert len(session.groups) == 3 and session.groups[1].related is not None

    async def drive() -> None:
        app_ = ReviewApp(session)
        async with app_.run_test(size=(140, 40)) as pilot:
            footer = " ".join(
                str(b.key_display or b.key)
                for b in app_.BINDINGS
                if b.show  # type: ignore[union-attr]
            )
            assert "↑" in footer and "↓" in footer
            await pilot.press("right")  # the related pair
            cards = list(app_.query(".card"))
            assert [c.has_class("related") for c in cards] == [True, True]
            assert "related pair 1 of 2" in str(app_.query_one("#header").render())
            await pilot.press("down", "k", "space", "n", "enter")  # none of these edit it
            assert session.groups[1].keeper == 0 and session.groups[1].remove == set()
            assert not session.groups[1].not_duplicates

    asyncio.run(drive())
    reviewed = session.result()
    assert len(reviewed.groups) == 1 and reviewed.not_duplicates == []
    removed = {r.file.path for g in reviewed.groups for r in g.remove}
    assert not any("sticker" in p for p in removed)


def test_similarity_labels_follow_the_keeper(with_overlay: Path) -> None:
    session = ReviewSession(plan_of(with_overlay))
    assert session.similarity_label(0) is None  # the keeper
    assert session.similarity_label(1).startswith("similarity to keeper ")  # type: ignore[union-attr]
    session.selected = 1
    session.make_keeper()
    assert session.similarity_label(1) is None  # the new keeper shows no score to itself
    assert session.similarity_label(0) == "the proposed keeper"


def test_the_matplotlib_window_shows_its_keys_and_related_pairs(with_overlay: Path) -> None:
    import matplotlib.pyplot as plt

    from dedup_cli.review.gui import MatplotlibReviewer

    session = ReviewSession(plan_of(with_overlay))
    reviewer = MatplotlibReviewer(session)
    texts = " ".join(t.get_text() for t in reviewer.figure.texts)
    assert "Esc: cancel" in texts and "n: not duplicates" in texts
    session.next_group()
    reviewer.draw()
    assert "related pair 1 of 2" in reviewer.figure._suptitle.get_text()  # type: ignore[union-attr]
    titles = [ax.get_title() for ax in reviewer.image_axes]
    assert all(t.startswith("RELATED (STAYS)") for t in titles)
    plt.close(reviewer.figure)
