"""The matplotlib reviewer under the Agg backend, driven by synthetic key and click events."""

from __future__ import annotations

from pathlib import Path

import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.backend_bases import CloseEvent, KeyEvent, MouseEvent  # noqa: E402

from dedup_cli.embed.pipeline import EmbedOptions  # noqa: E402
from dedup_cli.jobs.find import find_duplicates  # noqa: E402
from dedup_cli.models import get_spec  # noqa: E402
from dedup_cli.review.gui import KEEP_COLOUR, REMOVE_COLOUR, MatplotlibReviewer  # noqa: E402
from dedup_cli.review.session import ReviewSession  # noqa: E402
from dedup_cli.store import Store  # noqa: E402

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


def session_for(library: Path) -> ReviewSession:
    with Store(library / "image_database.db") as store:
        plan = find_duplicates(
            library, store, get_spec("effnet"), EmbedOptions(device="cpu", workers=0)
        ).plan
    return ReviewSession(plan)


def key(reviewer: MatplotlibReviewer, name: str) -> None:
    KeyEvent("key_press_event", reviewer.figure.canvas, name)._process()


def click(reviewer: MatplotlibReviewer, position: int) -> None:
    ax = reviewer.image_axes[position]
    bbox = ax.get_window_extent()
    x, y = (bbox.x0 + bbox.x1) / 2, (bbox.y0 + bbox.y1) / 2
    MouseEvent("button_press_event", reviewer.figure.canvas, x, y, button=1)._process()


def test_keys_and_clicks_edit_the_plan(library: Path) -> None:
    session = session_for(library)
    reviewer = MatplotlibReviewer(session)
    first = session.group
    colours = [ax.spines["left"].get_edgecolor() for ax in reviewer.image_axes]
    assert matplotlib.colors.to_hex(colours[0]) == KEEP_COLOUR
    assert matplotlib.colors.to_hex(colours[1]) == REMOVE_COLOUR
    click(reviewer, 1)  # the copy becomes the keeper
    assert first.keeper == 1 and first.remove == set()
    click(reviewer, 0)  # and the old keeper is marked for removal
    assert first.remove == {0}
    key(reviewer, "right")
    assert session.index == 1
    key(reviewer, "n")
    assert session.groups[1].not_duplicates
    key(reviewer, "left")
    assert session.index == 0
    ARTIFACTS.mkdir(exist_ok=True)
    reviewer.save(ARTIFACTS / "review_gui.png")
    assert (ARTIFACTS / "review_gui.png").stat().st_size > 10_000
    CloseEvent("close_event", reviewer.figure.canvas)._process()
    assert session.finished
    plan = session.result()
    assert [r.file.path for r in plan.groups[0].remove] == [first.files[0].path]
    assert len(plan.groups) == len(session.groups) - 1
    plt.close(reviewer.figure)


def test_escape_cancels(library: Path) -> None:
    session = session_for(library)
    reviewer = MatplotlibReviewer(session)
    key(reviewer, "escape")
    assert session.cancelled and session.result().groups == []
    plt.close(reviewer.figure)
