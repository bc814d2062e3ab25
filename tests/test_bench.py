"""``dedup bench`` on a few real photos: the corpus, the scores, and ROOT left untouched."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from conftest import encode, sample_photos
from dedup_cli.cli import app
from dedup_cli.jobs.bench import (
    LOOKALIKE,
    Sample,
    Scores,
    _scores,
    build_corpus,
    suggest_threshold,
)
from dedup_cli.media.transforms import EASY, HARD

runner = CliRunner()


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mine")
    photos = sample_photos()
    for name in ("coffee", "rocket", "astronaut", "chelsea"):
        photo = photos[name]
        photo.thumbnail((400, 400))
        (root / f"{name}.jpg").write_bytes(encode(photo, quality=92))
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff not really")
    return root


def test_corpus_is_seeded_and_has_every_transform(photo_folder: Path, tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    first, bad = build_corpus(photo_folder, one, sample=3, seed=7)
    second, _ = build_corpus(photo_folder, two, sample=3, seed=7)
    assert [s.path for s in first] == [s.path for s in second]
    assert {s.family for s in first} == {"original", *EASY, *HARD, "pan"}
    assert len(first) == 3 * (1 + len(EASY) + len(HARD) + 2)  # two pan frames per photo
    for sample in first:
        with Image.open(one / sample.path) as image:
            assert image.size[0] > 0
    assert bad in (0, 1)  # the broken file is skipped and counted if it was drawn


def test_the_line_art_family_joins_the_corpus_and_is_scored_on_its_own(
    photo_folder: Path, tmp_path: Path
) -> None:
    from dedup_cli.jobs.bench import LINE_ART
    from dedup_cli.media.lineart import line_art

    samples, _ = build_corpus(photo_folder, tmp_path, sample=1, seed=7, line_art=True)
    drawn = [s for s in samples if s.kind == LINE_ART]
    originals = [s for s in drawn if s.family == "original"]
    assert len(originals) == len(line_art())
    assert len(drawn) == len(originals) * (1 + len(EASY) + len(HARD))
    assert len({s.source for s in drawn}) == len(originals)  # each page its own source
    assert not {s.source for s in drawn} & {s.source for s in samples if s.kind != LINE_ART}
    # The scorer counts a line-art pair on its own key, and a pair of two pages as false.
    page_1, page_2 = (
        next(s for s in originals if s.path.endswith(f"text_page_{k}_original.png")) for k in (1, 2)
    )
    index = {s.path: k for k, s in enumerate(samples)}
    copy = next(s for s in drawn if s.source == page_1.source and s.family == "downscale")
    positives = {tuple(sorted((index[page_1.path], index[copy.path])))}
    members = {index[page_1.path], index[page_2.path], index[copy.path]}
    predicted = positives | {tuple(sorted((index[page_1.path], index[page_2.path])))}
    scores = _scores(predicted, positives, members, samples)  # type: ignore[arg-type]
    assert (scores.recall, scores.true_pairs, scores.false_pairs) == (1.0, 1, 1)


def test_bench_reports_scores_and_never_writes_into_root(
    photo_folder: Path, tmp_path: Path
) -> None:
    before = sorted(p.name for p in photo_folder.iterdir())
    plot = tmp_path / "pr.png"
    result = runner.invoke(
        app,
        [
            "bench",
            str(photo_folder),
            "--sample",
            "3",
            "--json",
            "--workers",
            "0",
            "--plot",
            str(plot),
            "--no-line-art",
        ],
    )
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    bench = doc["models"][0]
    assert bench["model"] == "effnet" and bench["photos"] == 3 and bench["images_per_second"] > 0
    default = bench["thresholds"][str(bench["default_threshold"])]
    # Easy copies of real photos are found at the default threshold, with no false pair.
    assert default["easy"]["recall"] >= 0.9 and default["easy"]["precision"] == 1.0
    assert bench["chosen_threshold"] is not None
    families = bench["families"][str(bench["default_threshold"])]
    assert families["downscale"]["recall"] == 1.0 and families["png"]["recall"] == 1.0
    assert plot.stat().st_size > 5_000
    assert sorted(p.name for p in photo_folder.iterdir()) == before


def test_scorer_on_hand_built_predictions() -> None:
    """Two photos (0, 1) with two copies each and two pan frames each; known answers."""
    samples = [
        Sample("0_o", 0, "original", "original"),  # 0
        Sample("0_a", 0, "downscale", "easy"),  # 1
        Sample("0_b", 0, "hflip", "hard"),  # 2
        Sample("1_o", 1, "original", "original"),  # 3
        Sample("1_a", 1, "downscale", "easy"),  # 4
        Sample("1_b", 1, "hflip", "hard"),  # 5
        Sample("0_pa", 0, "pan", LOOKALIKE),  # 6
        Sample("0_pb", 0, "pan", LOOKALIKE),  # 7
        Sample("0_patch", 0, "patch", LOOKALIKE),  # 8: a patch of photo 0, inside frame 6
        Sample("9_face", 9, "face", LOOKALIKE),  # 9: a stranger among the distractors
    ]
    positives = {(0, 1), (3, 4)}  # the easy tier
    members = {0, 1, 3, 4, 6, 7, 8, 9}
    # Right: (0,1). Wrong: (1,3) strangers, (6,7) the two frames of one scene, (3,9) a
    # distractor of another source. Not scored: (0,6) a frame with its own photo and (6,8) a
    # patch inside a frame (crops). Outside the tier: (2,5).
    predicted = {(0, 1), (1, 3), (6, 7), (3, 9), (0, 6), (6, 8), (2, 5)}
    scores = _scores(predicted, positives, members, samples)
    assert (scores.true_pairs, scores.false_pairs, scores.lookalike_pairs) == (1, 3, 2)
    assert scores.precision == 1 / 4
    assert scores.recall == 1 / 2
    assert abs(scores.f1 - 2 * (1 / 4) * (1 / 2) / (1 / 4 + 1 / 2)) < 1e-12
    # Nothing predicted: precision is vacuous (1.0), recall 0.
    empty = _scores(set(), positives, members, samples)
    assert (empty.precision, empty.recall, empty.f1) == (1.0, 0.0, 0.0)


def test_suggested_threshold_prefers_recall_then_fewer_pairs() -> None:
    def row(easy_p: float, easy_r: float, hard_r: float) -> dict[str, Scores]:
        return {
            "easy": Scores(easy_p, easy_r, 0.0, 0, 0),
            "hard": Scores(1.0, hard_r, 0.0, 0, 0),
        }

    grid = {
        0.70: row(0.98, 1.00, 0.60),  # misses the precision target
        0.75: row(1.00, 1.00, 0.50),  # best easy and hard recall among the eligible
        0.80: row(1.00, 1.00, 0.40),
        0.85: row(1.00, 0.90, 0.30),
    }
    assert suggest_threshold(grid, 0.99) == 0.75
    grid[0.80] = row(1.00, 1.00, 0.50)  # a tie on both recalls: the higher threshold wins
    assert suggest_threshold(grid, 0.99) == 0.80
    assert suggest_threshold(grid, 1.01) is None
