"""Calibrate a model's default threshold on real photos available offline.

Corpus: scikit-image and scikit-learn sample photos; easy copies of each (half size, JPEG
quality 30, 10% crop, PNG); look-alikes (camera pans of 25-40%, a stereo pair, halves and
quarters of texture photos); every other photo as a distractor. For each threshold it prints
pairwise precision and recall of the easy copies, with the embedding alone and with the
pixel-level confirmation that ``find`` applies.

    python benchmarks/calibrate_threshold.py --model effnet
"""

from __future__ import annotations

import argparse
import io
import itertools

import numpy as np
import skimage.data as data
import torch
from PIL import Image

from dedup_cli.imageio import decode
from dedup_cli.models import get_spec, load_model
from dedup_cli.verify import confirm

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
]


def encode(image: Image.Image, fmt: str = "JPEG", **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def build_corpus() -> tuple[list[str], list[bytes], set[frozenset[int]], set[frozenset[int]]]:
    from sklearn.datasets import load_sample_images

    photos = {n: Image.fromarray(getattr(data, n)()).convert("RGB") for n in PHOTOS}
    china, flower = load_sample_images().images
    photos["china"], photos["flower"] = Image.fromarray(china), Image.fromarray(flower)
    names: list[str] = []
    blobs: list[bytes] = []
    copies: set[frozenset[int]] = set()
    lookalikes: set[frozenset[int]] = set()

    def add(name: str, blob: bytes) -> int:
        names.append(name)
        blobs.append(blob)
        return len(names) - 1

    for name, im in photos.items():
        w, h = im.size
        group = [
            add(name, encode(im, quality=95)),
            add(name + "_half", encode(im.resize((w // 2, h // 2)), quality=90)),
            add(name + "_q30", encode(im, quality=30)),
            add(name + "_crop10", encode(im.crop((w // 20, h // 20, w - w // 20, h - h // 20)))),
            add(name + "_png", encode(im, "PNG")),
        ]
        copies |= {frozenset(p) for p in itertools.combinations(group, 2)}
        span = int(w * 0.6)
        a = add(f"{name}_pan_a", encode(im.crop((0, 0, span, h))))
        for shift in (0.25, 0.4):
            b = add(
                f"{name}_pan{shift}", encode(im.crop((int(w * shift), 0, int(w * shift) + span, h)))
            )
            lookalikes.add(frozenset((a, b)))
    left, right = data.stereo_motorcycle()[:2]
    lookalikes.add(
        frozenset(
            (
                add("moto_l", encode(Image.fromarray(left))),
                add("moto_r", encode(Image.fromarray(right))),
            )
        )
    )
    for name in ("brick", "grass", "gravel", "hubble_deep_field", "moon", "retina"):
        im = Image.fromarray(getattr(data, name)()).convert("RGB")
        w, h = im.size
        parts = [
            im.crop((0, 0, w // 2, h)),
            im.crop((w // 2, 0, w, h)),
            im.crop((0, 0, w // 2, h // 2)),
            im.crop((w // 2, h // 2, w, h)),
        ]
        ids = [add(f"{name}_part{k}", encode(p)) for k, p in enumerate(parts)]
        lookalikes |= {frozenset((ids[0], ids[1])), frozenset((ids[2], ids[3]))}
    return names, blobs, copies, lookalikes


def source(name: str) -> str:
    """The photo a file was made from; pairs of one source that are neither copies nor
    look-alikes (a copy against a 40% pan frame) are left out of the scores."""
    for prefix in sorted(
        [*PHOTOS, "china", "flower", "moto", "brick", "grass", "gravel"], key=len, reverse=True
    ):
        if name.startswith(prefix):
            return prefix
    return name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="effnet")
    parser.add_argument("--weights", default=None)
    parser.add_argument(
        "--flips",
        action="store_true",
        help="let the pixel check also try mirror images and quarter turns",
    )
    args = parser.parse_args()
    spec = get_spec(args.model)
    model = load_model(spec, torch.device("cpu"), args.weights)
    names, blobs, copies, lookalikes = build_corpus()
    decoded = [decode(b, spec.preprocessing.size) for b in blobs]
    vectors = np.concatenate(
        [
            model.embed_batch(
                torch.from_numpy(np.stack([d.pixels for d in decoded[i : i + 32]])).permute(
                    0, 3, 1, 2
                )
            )
            for i in range(0, len(decoded), 32)
        ]
    )
    sims = vectors @ vectors.T
    n = len(names)
    print(
        f"model {spec.key}: {n} images, {len(copies)} copy pairs, {len(lookalikes)} look-alike pairs"
    )
    print("FP: look-alikes and pairs of different photos; lookalk: look-alike pairs grouped")
    print(f"{'threshold':>9} | {'embedding only':^31} | {'with pixel confirmation':^31}")
    print(
        f"{'':>9} | {'precision':>9} {'recall':>7} {'lookalk':>7} {'FP':>5} |"
        f" {'precision':>9} {'recall':>7} {'lookalk':>7} {'FP':>5}"
    )
    confirmed_cache: dict[tuple[int, int], bool] = {}
    for threshold in np.arange(0.70, 0.99, 0.02):
        row = []
        for verify in (False, True):
            found = set()
            for i in range(n):
                for j in range(i + 1, n):
                    if sims[i, j] < threshold:
                        continue
                    if verify:
                        key = (i, j)
                        if key not in confirmed_cache:
                            confirmed_cache[key] = confirm(
                                decoded[i].thumbnail, decoded[j].thumbnail, flips=args.flips
                            )
                        if not confirmed_cache[key]:
                            continue
                    found.add(frozenset((i, j)))
            tp = len(found & copies)
            fp = sum(
                1
                for pair in found - copies
                if pair in lookalikes or len({source(names[k]) for k in pair}) == 2
            )
            precision = tp / (tp + fp) if tp + fp else 1.0
            row.append(
                f"{precision:9.3f} {tp / len(copies):7.3f} {len(found & lookalikes):7d} {fp:5d}"
            )
        print(f"{threshold:9.2f} | {row[0]} | {row[1]}")


if __name__ == "__main__":
    main()
