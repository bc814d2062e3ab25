"""Calibrate a model's default threshold on real photos available offline, with hundreds of
look-alike distractors, and compare with imagededup's perceptual hashes on the same corpus.

Corpus (written to a temporary folder):
- 21 real photos (scikit-image, scikit-learn, matplotlib samples), each with every easy and
  hard transform of ``dedup_cli.media.transforms`` (the AugLy overlays too when AugLy is installed);
- look-alike distractors: three overlapping frames of a camera pan across each photo, four
  patches of each texture-like photo, the stereo pair, and 200 faces of different people
  (scikit-image's LFW subset, upscaled). A pan frame with its own photo is a crop of it and is
  not scored; every other pair involving a distractor counts as false.

For each threshold it prints pairwise precision and recall per tier, and how many look-alike
pairs were grouped, for three ways of deciding: the embedding alone (``find --no-verify``),
exact + thumbnail checks (``--no-geometric``), and the full cascade (the default). Then
imagededup's PHash, DHash and WHash at several Hamming distances, scored the same way.

    python benchmarks/calibrate_threshold.py --model effnet
    python benchmarks/calibrate_threshold.py --model effnet --no-imagededup --faces 50
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import skimage.data as data
from PIL import Image

from dedup_cli.embed.pipeline import EmbedOptions
from dedup_cli.jobs.bench import LOOKALIKE, ModelBench, Sample, _scores, evaluate
from dedup_cli.media.transforms import TIERS
from dedup_cli.models import get_spec, resolve_device

PHOTOS = [
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "camera",
    "moon",
    "coins",
    "clock",
    "page",
    "text",
    "cell",
    "brick",
    "grass",
    "gravel",
]
TEXTURES = ["brick", "grass", "gravel", "moon", "hubble_deep_field", "retina", "cell"]
THRESHOLDS = (0.60, 0.65, 0.70, 0.75, 0.78, 0.80, 0.82, 0.84, 0.86, 0.88, 0.90, 0.94)


def photos() -> dict[str, Image.Image]:
    import matplotlib.cbook
    from sklearn.datasets import load_sample_images

    out = {n: Image.fromarray(getattr(data, n)()).convert("RGB") for n in PHOTOS}
    china, flower = load_sample_images().images
    out["china"], out["flower"] = Image.fromarray(china), Image.fromarray(flower)
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        out["grace_hopper"] = Image.open(f).convert("RGB")
    return out


def build_corpus(folder: Path, faces: int) -> list[Sample]:
    samples: list[Sample] = []

    def add(name: str, image: Image.Image, source: int, family: str, tier: str) -> None:
        image.convert("RGB").save(folder / name, "JPEG", quality=92)
        samples.append(Sample(name, source, family, tier))

    sources = photos()
    for source, (name, image) in enumerate(sources.items()):
        add(f"{name}.jpg", image, source, "original", "original")
        for tier, transforms in TIERS.items():
            for family, transform in transforms.items():
                blob, ext = transform(image)
                (folder / f"{name}_{family}{ext}").write_bytes(blob)
                samples.append(Sample(f"{name}_{family}{ext}", source, family, tier))
        w, h = image.size
        span = int(w * 0.6)
        for k, start in enumerate((0, int(w * 0.2), w - span)):
            add(
                f"{name}_pan{k}.jpg",
                image.crop((start, 0, start + span, h)),
                source,
                "pan",
                LOOKALIKE,
            )
    index = {name: k for k, name in enumerate(sources)}
    next_source = len(sources)
    for name in TEXTURES:
        image = sources[name]
        w, h = image.size
        boxes = [
            (0, 0, w // 2, h // 2),
            (w // 2, 0, w, h // 2),
            (0, h // 2, w // 2, h),
            (w // 2, h // 2, w, h),
        ]
        for k, box in enumerate(boxes):
            # Two patches of one texture are look-alikes; a patch inside a pan frame or a
            # copy of its photo is a crop of it, which the scorer leaves out.
            add(f"{name}_patch{k}.jpg", image.crop(box), index[name], "patch", LOOKALIKE)
    left, right = data.stereo_motorcycle()[:2]
    add("moto_left.jpg", Image.fromarray(left), next_source, "stereo", LOOKALIKE)
    add("moto_right.jpg", Image.fromarray(right), next_source, "stereo", LOOKALIKE)
    next_source += 1
    for k, face in enumerate(data.lfw_subset()[:faces]):
        pixels = np.clip(face * 255, 0, 255).astype(np.uint8)
        add(
            f"face{k:03d}.jpg",
            Image.fromarray(pixels).resize((100, 100)),
            next_source + k,
            "face",
            LOOKALIKE,
        )
    return samples


def print_bench(label: str, bench: ModelBench) -> None:
    print(f"\n{label}")
    print(
        f"{'threshold':>9} | {'easy P':>7} {'easy R':>7} | {'hard P':>7} {'hard R':>7}"
        f" {'R+rel':>6} | {'false':>5} {'lookalk':>7}"
    )
    for t, scores in sorted(bench.by_threshold.items()):
        e, h, a = scores["easy"], scores["hard"], scores["all"]
        mark = " *" if t == bench.default_threshold else ""
        print(
            f"{t:9.2f} | {e.precision:7.3f} {e.recall:7.3f} | {h.precision:7.3f} {h.recall:7.3f}"
            f" {h.recall_with_related:6.3f} | {a.false_pairs:5d} {a.lookalike_pairs:7d}{mark}"
        )
    if bench.confirmed_by:
        print(f"confirmed at the default threshold: {bench.confirmed_by}")


def family_table(bench: ModelBench, threshold: float) -> None:
    print(f"\nrecall per transform at {threshold:.2f} (full cascade; R+rel counts related pairs)")
    for family, s in bench.by_family[threshold].items():
        print(f"  {family:18s} {s.recall:6.3f}  R+rel {s.recall_with_related:6.3f}")


def imagededup_scores(folder: Path, samples: list[Sample]) -> None:
    try:
        from imagededup.methods import DHash, PHash, WHash
    except ImportError:
        print("\nimagededup not installed (pip install imagededup): comparison skipped")
        return
    import logging

    logging.getLogger("imagededup").setLevel(logging.WARNING)
    index = {s.path: k for k, s in enumerate(samples)}
    originals = {k for k, s in enumerate(samples) if s.family == "original"}
    distractors = {k for k, s in enumerate(samples) if s.tier == LOOKALIKE}
    by_original = {samples[k].source: k for k in originals}
    positives: dict[str, set[tuple[int, int]]] = {"easy": set(), "hard": set(), "all": set()}
    members: dict[str, set[int]] = {t: originals | distractors for t in positives}
    for k, s in enumerate(samples):
        if s.tier in ("easy", "hard"):
            a, b = sorted((by_original[s.source], k))
            for tier in (s.tier, "all"):
                positives[tier].add((a, b))
                members[tier].add(k)
    print("\nimagededup (same corpus, same scoring)")
    print(
        f"{'method':>8} {'dist':>4} | {'easy P':>7} {'easy R':>7} | {'hard P':>7} {'hard R':>7}"
        f" | {'false':>5} {'lookalk':>7} | {'s':>5}"
    )
    for method in (PHash, DHash, WHash):
        hasher = method(verbose=False)
        started = time.perf_counter()
        encodings = hasher.encode_images(image_dir=str(folder))
        seconds = time.perf_counter() - started
        for distance in (0, 4, 8, 10, 12):
            found = hasher.find_duplicates(encoding_map=encodings, max_distance_threshold=distance)
            predicted = {
                tuple(sorted((index[a], index[b])))
                for a, others in found.items()
                for b in others
                if a in index and b in index
            }
            e = _scores(predicted, positives["easy"], members["easy"], samples)  # type: ignore[arg-type]
            h = _scores(predicted, positives["hard"], members["hard"], samples)  # type: ignore[arg-type]
            every = _scores(predicted, positives["all"], members["all"], samples)  # type: ignore[arg-type]
            false, lookalike = every.false_pairs, every.lookalike_pairs
            print(
                f"{method.__name__:>8} {distance:4d} | {e.precision:7.3f} {e.recall:7.3f} |"
                f" {h.precision:7.3f} {h.recall:7.3f} | {false:5d} {lookalike:7d} |"
                f" {seconds:5.1f}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="effnet")
    parser.add_argument("--weights", default=None)
    parser.add_argument("--faces", type=int, default=200, help="LFW faces as distractors")
    parser.add_argument("--no-imagededup", action="store_true")
    args = parser.parse_args()
    spec = get_spec(args.model)
    options = EmbedOptions(device=resolve_device("auto"), weights=args.weights, workers=2)
    with tempfile.TemporaryDirectory(prefix="dedup-calibrate-") as tmp:
        folder = Path(tmp) / "corpus"
        folder.mkdir()
        samples = build_corpus(folder, args.faces)
        copies = sum(1 for s in samples if s.tier in ("easy", "hard"))
        distractors = sum(1 for s in samples if s.tier == LOOKALIKE)
        print(
            f"model {spec.key}: {len(samples)} images: "
            f"{sum(s.family == 'original' for s in samples)} photos, {copies} copies, "
            f"{distractors} look-alike distractors"
        )
        runs = {}
        for label, verify, geometric in (
            ("embedding alone (--no-verify)", False, False),
            ("exact + thumbnails (--no-geometric)", True, False),
            ("full cascade: exact + thumbnails + geometry (default)", True, True),
        ):
            started = time.perf_counter()
            runs[label] = evaluate(
                folder,
                samples,
                spec,
                options,
                Path(tmp),
                0.99,
                THRESHOLDS,
                geometric=geometric,
                verify=verify,
            )
            print_bench(
                f"{label}  [{time.perf_counter() - started:.0f} s incl. hashing]", runs[label]
            )
        full = runs["full cascade: exact + thumbnails + geometry (default)"]
        family_table(full, spec.default_threshold)
        if not args.no_imagededup:
            imagededup_scores(folder, samples)


if __name__ == "__main__":
    main()
