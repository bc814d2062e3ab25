"""``dedup bench``: how accurate is dedup on *your* photos?

Samples N of the user's photos (seeded), writes transformed copies of each into a temporary
folder (never into the photo folder), plus two look-alike frames of each photo (a camera pan:
its left 60% and its right 60%, which are different pictures of one scene), runs the same
hash -> search -> confirmation cascade as ``find``, and reports pairwise precision, recall
and F1 per threshold, per tier and per transform family, how many look-alike pairs were
grouped, the threshold that reaches a target precision with the highest recall, and the
hashing speed. A pair counts as predicted when ``find`` would group it: embedding similarity
at the threshold and confirmed by same bytes, pixels or geometry.

Each pan frame is also a crop of its photo; those pairs are neither right nor wrong and are
left out of the scores. A frame paired with the other frame, or with another photo, is false.
"""

from __future__ import annotations

import random
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from dedup_cli.core.progress import Progress
from dedup_cli.embed.collection import load_collection
from dedup_cli.embed.pipeline import embed_root
from dedup_cli.errors import UsageError
from dedup_cli.jobs.workflow import prove
from dedup_cli.media.scan import scan
from dedup_cli.media.transforms import TIERS
from dedup_cli.models import ModelSpec
from dedup_cli.search.exact import similar_pairs
from dedup_cli.store import Store

LOOKALIKE = "lookalike"  # the tier of distractors
PAN = "pan"  # the family of camera-pan frames
LINE_ART = "lineart"  # the line-art family: pages, scans, drawings (``media.lineart``)
THRESHOLDS = tuple(round(t, 2) for t in np.arange(0.70, 0.995, 0.02))
MAX_SIDE = 1024  # sampled photos are shrunk to this, so a bench of 200 photos stays quick


@dataclass(frozen=True)
class Sample:
    """One file of the bench corpus: which photo it came from and by which edit."""

    path: str
    source: int
    family: str  # "original", a transform name, or a kind of distractor ("pan", ...)
    tier: str  # "original", "easy", "hard" or "lookalike"
    kind: str = "photo"  # "photo" (the user's) or LINE_ART (``media.lineart``)


def build_corpus(
    root: Path,
    out: Path,
    sample: int,
    seed: int = 0,
    progress: Progress | None = None,
    line_art: bool = False,
) -> tuple[list[Sample], int]:
    """Originals and transformed copies of ``sample`` photos of ``root`` written into ``out``
    (and, with ``line_art``, of the line-art family: text pages, scans, drawings).

    Returns the samples and how many picked photos could not be read (they are replaced by
    others where the folder has more)."""
    watch = progress or Progress()
    files = scan(root).files
    if not files:
        raise UsageError(f"no images found in {root}")
    rng = random.Random(seed)
    order = list(files)
    rng.shuffle(order)
    samples: list[Sample] = []
    unreadable = 0
    source = 0
    watch.start(min(sample, len(order)), "bench: making copies")
    for file in order:
        if source >= sample:
            break
        try:
            with Image.open(file.absolute) as opened:
                image = ImageOps.exif_transpose(opened).convert("RGB")
        except Exception:  # noqa: BLE001 - any unreadable file is skipped and counted
            unreadable += 1
            continue
        image.thumbnail((MAX_SIDE, MAX_SIDE))
        name = f"{source:04d}_original.jpg"
        image.save(out / name, "JPEG", quality=95)
        samples.append(Sample(name, source, "original", "original"))
        for tier, transforms in TIERS.items():
            for family, transform in transforms.items():
                data, ext = transform(image)
                name = f"{source:04d}_{family}{ext}"
                (out / name).write_bytes(data)
                samples.append(Sample(name, source, family, tier))
        w, h = image.size
        for side, box in (("a", (0, 0, int(w * 0.6), h)), ("b", (int(w * 0.4), 0, w, h))):
            name = f"{source:04d}_pan_{side}.jpg"
            image.crop(box).save(out / name, "JPEG", quality=92)
            samples.append(Sample(name, source, PAN, LOOKALIKE))
        source += 1
        watch.advance(1)
    watch.finish()
    if line_art:
        samples += _line_art_samples(out, source)
    return samples, unreadable


def _line_art_samples(out: Path, first_source: int) -> list[Sample]:
    """The line-art family (``media.lineart``), each original with every transform; the
    rendered pages share one layout and the drawings one style, so each is a look-alike of
    the others (another source: a pair of them is a false pair)."""
    from dedup_cli.media.lineart import line_art

    samples = []
    for source, (label, image) in enumerate(line_art().items(), start=first_source):
        name = f"{source:04d}_{label}_original.png"
        image.save(out / name)
        samples.append(Sample(name, source, "original", "original", LINE_ART))
        for tier, transforms in TIERS.items():
            for family, transform in transforms.items():
                data, ext = transform(image)
                name = f"{source:04d}_{label}_{family}{ext}"
                (out / name).write_bytes(data)
                samples.append(Sample(name, source, family, tier, LINE_ART))
    return samples


@dataclass
class Scores:
    precision: float
    recall: float
    f1: float
    true_pairs: int
    false_pairs: int
    lookalike_pairs: int = 0  # of the false pairs: those with a look-alike distractor
    recall_with_related: float = 0.0  # counting pairs found as related (reported, kept)

    def as_dict(self) -> dict[str, Any]:
        return {
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "f1": round(self.f1, 4),
            "true_pairs": self.true_pairs,
            "false_pairs": self.false_pairs,
            "lookalike_pairs": self.lookalike_pairs,
            "recall_with_related": round(self.recall_with_related, 4),
        }


@dataclass
class ModelBench:
    model: str
    default_threshold: float
    images_per_second: float
    photos: int
    files: int
    by_threshold: dict[float, dict[str, Scores]] = field(default_factory=dict)
    by_family: dict[float, dict[str, Scores]] = field(default_factory=dict)
    chosen_threshold: float | None = None
    target_precision: float = 0.99
    confirmed_by: dict[str, int] = field(default_factory=dict)  # at the default threshold
    geometric: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "photos": self.photos,
            "files": self.files,
            "images_per_second": round(self.images_per_second, 2),
            "default_threshold": self.default_threshold,
            "target_precision": self.target_precision,
            "chosen_threshold": self.chosen_threshold,
            "geometric": self.geometric,
            "confirmed_by": self.confirmed_by,
            "thresholds": {
                str(t): {k: s.as_dict() for k, s in scores.items()}
                for t, scores in self.by_threshold.items()
            },
            "families": {
                str(t): {k: s.as_dict() for k, s in scores.items()}
                for t, scores in self.by_family.items()
            },
        }


def _scores(
    predicted: set[tuple[int, int]],
    positives: set[tuple[int, int]],
    members: set[int],
    samples: list[Sample],
    related: set[tuple[int, int]] | None = None,
) -> Scores:
    """Precision over predicted pairs among ``members``; recall over ``positives``
    (also counting ``related`` pairs, which ``find`` reports but never plans)."""
    true = false = lookalike = 0
    for a, b in predicted:
        if a not in members or b not in members:
            continue
        sa, sb = samples[a], samples[b]
        if sa.source != sb.source:
            false += 1
            lookalike += int(LOOKALIKE in (sa.tier, sb.tier))
        elif sa.tier == LOOKALIKE and sb.tier == LOOKALIKE:
            if sa.family == sb.family:  # two frames of one pan, two patches of one texture
                false += 1
                lookalike += 1
            # else: a patch inside a pan frame of the same photo: a crop, not scored
        elif sa.tier != LOOKALIKE and sb.tier != LOOKALIKE:
            true += 1
        # else: a pan frame with a copy of its own photo, which it is a crop of: not scored
    found = len(predicted & positives)
    precision = true / (true + false) if true + false else 1.0
    recall = found / len(positives) if positives else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    either = predicted | (related or set())
    with_related = len(either & positives) / len(positives) if positives else 1.0
    return Scores(precision, recall, f1, true, false, lookalike, with_related)


def evaluate(
    folder: Path,
    samples: list[Sample],
    spec: ModelSpec,
    options: Any,
    work: Path,
    target_precision: float = 0.99,
    thresholds: tuple[float, ...] = THRESHOLDS,
    geometric: bool = True,
    verify: bool = True,
    progress: Progress | None = None,
) -> ModelBench:
    """Hash the corpus with one model and score every threshold (``verify=False``: the
    embedding alone, as ``find --no-verify``)."""
    with Store(work / f"bench-{spec.key.replace('/', '_')}.db") as store:
        found = scan(folder, exclude=[store.path])
        started = time.perf_counter()
        report = embed_root(folder, store, spec, options, progress, scanned=found)
        seconds = time.perf_counter() - started
        if store.model_id(spec.key) is None:
            raise UsageError("no embeddings were made; see the errors above")
        files, matrix, *_ = load_collection(folder, store, spec, found)
        all_t = sorted(set(thresholds) | {spec.default_threshold})
        pairs = similar_pairs(matrix, min(all_t))
        # Geometric checks are bounded per file in find; here every candidate is checked, so
        # the scores do not depend on which thresholds the grid holds.
        confirmation = prove(
            pairs,
            files,
            files,
            {folder: store},
            verify=verify,
            geometric=geometric,
            per_file=len(files),
            progress=progress,
        ).confirmation
    index = {s.path: k for k, s in enumerate(samples)}
    ids = [index[f.path] for f in files]
    kept = confirmation.pairs
    confirmed: list[tuple[int, int, float]] = []
    for i, j, sim in zip(kept.left.tolist(), kept.right.tolist(), kept.similarity.tolist()):
        a, b = sorted((ids[i], ids[j]))
        confirmed.append((a, b, sim))
    by_path = {str(f.absolute): index[f.path] for f in files}
    related: list[tuple[int, int, float]] = []
    for entry in confirmation.related:
        a, b = sorted((by_path[entry["a"]], by_path[entry["b"]]))
        related.append((a, b, entry["similarity"]))
    originals = {k for k, s in enumerate(samples) if s.family == "original"}
    by_source_original = {samples[k].source: k for k in originals}
    positives: dict[str, set[tuple[int, int]]] = defaultdict(set)
    distractors = {k for k, s in enumerate(samples) if s.tier == LOOKALIKE}
    members: dict[str, set[int]] = defaultdict(lambda: originals | distractors)
    for k, sample in enumerate(samples):
        if sample.family == "original" or sample.tier == LOOKALIKE:
            continue
        if sample.source not in by_source_original:
            continue
        pair = tuple(sorted((by_source_original[sample.source], k)))
        keys = [sample.family, sample.tier, "all"]
        if sample.kind == LINE_ART:
            keys.append(LINE_ART)
        for key in keys:
            positives[key].add(pair)  # type: ignore[arg-type]
            members[key].add(k)
    result = ModelBench(
        spec.key,
        spec.default_threshold,
        report.embedded / seconds if seconds else 0.0,
        len(originals),
        len(samples),
        target_precision=target_precision,
        geometric=geometric,
    )
    for method, sim in zip(confirmation.methods, kept.similarity.tolist()):
        if sim >= spec.default_threshold:
            result.confirmed_by[method] = result.confirmed_by.get(method, 0) + 1
    for t in all_t:
        predicted = {(a, b) for a, b, s in confirmed if s >= t}
        near = {(a, b) for a, b, s in related if s >= t}
        result.by_threshold[t] = {
            tier: _scores(predicted, positives[tier], members[tier], samples, near)
            for tier in ("easy", "hard", "all", *([LINE_ART] if positives[LINE_ART] else []))
        }
        families = [f for transforms in TIERS.values() for f in transforms if f in positives]
        result.by_family[t] = {
            f: _scores(predicted, positives[f], members[f], samples, near) for f in families
        }
    result.chosen_threshold = suggest_threshold(result.by_threshold, target_precision)
    return result


def suggest_threshold(
    by_threshold: dict[float, dict[str, Scores]], target_precision: float
) -> float | None:
    """Among thresholds whose easy-tier precision reaches the target: the best easy recall,
    then the best hard recall, then the highest threshold (fewer pairs to verify)."""
    eligible = [t for t, s in by_threshold.items() if s["easy"].precision >= target_precision]
    if not eligible:
        return None
    return max(
        eligible,
        key=lambda t: (by_threshold[t]["easy"].recall, by_threshold[t]["hard"].recall, t),
    )


def plot(results: list[ModelBench], path: Path) -> Path:
    """Precision and recall (easy and hard tiers) against threshold, one line per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
    for ax, tier in zip(axes, ("easy", "hard")):
        for bench in results:
            ts = sorted(bench.by_threshold)
            ax.plot(
                ts,
                [bench.by_threshold[t][tier].precision for t in ts],
                label=f"{bench.model} precision",
            )
            ax.plot(
                ts,
                [bench.by_threshold[t][tier].recall for t in ts],
                "--",
                label=f"{bench.model} recall",
            )
        ax.set_title(f"{tier} tier")
        ax.set_xlabel("threshold")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("pairwise score")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
