"""``dedup bench``: how accurate is dedup on *your* photos?

Samples N of the user's photos (seeded), writes transformed copies of each into a temporary
folder (never into the photo folder), runs the same hash -> search -> pixel confirmation as
``find``, and reports pairwise precision, recall and F1 per threshold, per tier and per
transform family, the threshold that reaches a target precision with the highest recall, and
the hashing speed. A pair counts as predicted when ``find`` would group it: embedding
similarity at the threshold and confirmed by the pixel check.
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

from dedup_cli.errors import UsageError
from dedup_cli.models import ModelSpec
from dedup_cli.scan import scan
from dedup_cli.search import similar_pairs
from dedup_cli.service import hash_root
from dedup_cli.store import Store
from dedup_cli.transforms import TIERS
from dedup_cli.verify import confirm

THRESHOLDS = tuple(round(t, 2) for t in np.arange(0.70, 0.995, 0.02))
MAX_SIDE = 1024  # sampled photos are shrunk to this, so a bench of 200 photos stays quick


@dataclass(frozen=True)
class Sample:
    """One file of the bench corpus: which photo it came from and by which edit."""

    path: str
    source: int
    family: str  # "original" or a transform name
    tier: str  # "original", "easy" or "hard"


def build_corpus(root: Path, out: Path, sample: int, seed: int = 0) -> tuple[list[Sample], int]:
    """Originals and transformed copies of ``sample`` photos of ``root`` written into ``out``.

    Returns the samples and how many picked photos could not be read (they are replaced by
    others where the folder has more)."""
    files = scan(root).files
    if not files:
        raise UsageError(f"no images found in {root}")
    rng = random.Random(seed)
    order = list(files)
    rng.shuffle(order)
    samples: list[Sample] = []
    unreadable = 0
    source = 0
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
        source += 1
    return samples, unreadable


@dataclass
class Scores:
    precision: float
    recall: float
    f1: float
    true_pairs: int
    false_pairs: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "f1": round(self.f1, 4),
            "true_pairs": self.true_pairs,
            "false_pairs": self.false_pairs,
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

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "photos": self.photos,
            "files": self.files,
            "images_per_second": round(self.images_per_second, 2),
            "default_threshold": self.default_threshold,
            "target_precision": self.target_precision,
            "chosen_threshold": self.chosen_threshold,
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
) -> Scores:
    """Precision over predicted pairs among ``members``; recall over ``positives``."""
    within = {p for p in predicted if p[0] in members and p[1] in members}
    true = sum(1 for a, b in within if samples[a].source == samples[b].source)
    false = len(within) - true
    found = len(predicted & positives)
    precision = true / len(within) if within else 1.0
    recall = found / len(positives) if positives else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return Scores(precision, recall, f1, true, false)


def evaluate(
    folder: Path,
    samples: list[Sample],
    spec: ModelSpec,
    options: Any,
    work: Path,
    target_precision: float = 0.99,
    thresholds: tuple[float, ...] = THRESHOLDS,
    flips: bool = False,
) -> ModelBench:
    """Hash the corpus with one model and score every threshold."""
    with Store(work / f"bench-{spec.key.replace('/', '_')}.db") as store:
        started = time.perf_counter()
        report = hash_root(folder, store, spec, options)
        seconds = time.perf_counter() - started
        known = store.model_id(spec.key)
        if known is None:
            raise UsageError("no embeddings were made; see the errors above")
        names, matrix = store.load_embeddings(known[0], known[1])
        thumbs = store.thumbnails(names)
    index = {s.path: k for k, s in enumerate(samples)}
    ids = [index[n] for n in names]
    all_t = sorted(set(thresholds) | {spec.default_threshold})
    pairs = similar_pairs(matrix, min(all_t))
    confirmed: list[tuple[int, int, float]] = []
    for i, j, s in zip(pairs.left.tolist(), pairs.right.tolist(), pairs.similarity.tolist()):
        if confirm(thumbs.get(names[i]), thumbs.get(names[j]), flips=flips):
            a, b = sorted((ids[i], ids[j]))
            confirmed.append((a, b, s))
    originals = {k for k, s in enumerate(samples) if s.family == "original"}
    by_source_original = {samples[k].source: k for k in originals}
    positives: dict[str, set[tuple[int, int]]] = defaultdict(set)
    members: dict[str, set[int]] = defaultdict(lambda: set(originals))
    for k, sample in enumerate(samples):
        if sample.family == "original":
            continue
        pair = tuple(sorted((by_source_original[sample.source], k)))
        for key in (sample.family, sample.tier, "all"):
            positives[key].add(pair)  # type: ignore[arg-type]
            members[key].add(k)
    result = ModelBench(
        spec.key,
        spec.default_threshold,
        report.embedded / seconds if seconds else 0.0,
        len(originals),
        len(samples),
        target_precision=target_precision,
    )
    for t in all_t:
        predicted = {(a, b) for a, b, s in confirmed if s >= t}
        result.by_threshold[t] = {
            tier: _scores(predicted, positives[tier], members[tier], samples)
            for tier in ("easy", "hard", "all")
        }
        families = [f for transforms in TIERS.values() for f in transforms]
        result.by_family[t] = {
            f: _scores(predicted, positives[f], members[f], samples) for f in families
        }
    eligible = [t for t in all_t if result.by_threshold[t]["easy"].precision >= target_precision]
    if eligible:
        result.chosen_threshold = max(
            eligible, key=lambda t: (result.by_threshold[t]["easy"].recall, t)
        )
    return result


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
