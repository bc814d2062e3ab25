"""What the confirmation cascade costs: ``confirm_pairs`` on large JPEGs with planted copies.

Writes N distinct photos (12 MP JPEGs made from the scikit-image/scikit-learn samples, each
with its own crop, tint and mirror so that they differ) and a half-size copy of each, embeds
them once with the default model, then times the confirmation of all candidate pairs at the
default threshold with 1 and with 2 threads, and reports pairs per second, how each pair was
confirmed and the peak RSS growth.

    python benchmarks/bench_verify.py --photos 100
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from dedup_cli.confirm.cascade import confirm_pairs
from dedup_cli.confirm.geometry import PictureCache
from dedup_cli.embed.collection import load_collection
from dedup_cli.embed.pipeline import EmbedOptions, embed_root
from dedup_cli.jobs.workflow import stored_thumbnails
from dedup_cli.media.scan import scan
from dedup_cli.models import get_spec, resolve_device
from dedup_cli.search.exact import similar_pairs
from dedup_cli.store import Store


def sources() -> list[Image.Image]:
    import skimage.data as data
    from sklearn.datasets import load_sample_images

    names = ["astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "camera"]
    images = [Image.fromarray(getattr(data, n)()).convert("RGB") for n in names]
    images += [Image.fromarray(a) for a in load_sample_images().images]
    return images


def write_corpus(folder: Path, photos: int) -> None:
    rng = np.random.default_rng(0)
    base = sources()
    for k in range(photos):
        image = base[k % len(base)]
        w, h = image.size
        x, y = int(rng.integers(0, w // 4)), int(rng.integers(0, h // 4))
        image = image.crop((x, y, x + w * 3 // 4, y + h * 3 // 4)).resize((4000, 3000))
        tint = Image.new("RGB", image.size, tuple(int(v) for v in rng.integers(0, 255, 3)))
        image = Image.blend(image, tint, 0.15)
        if k // len(base) % 2:
            image = ImageOps.mirror(image)
        image.save(folder / f"p{k:04d}.jpg", quality=90)
        image.resize((2000, 1500)).save(folder / f"p{k:04d}_half.jpg", quality=85)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=100)
    args = parser.parse_args()
    spec = get_spec("effnet")
    with tempfile.TemporaryDirectory(prefix="dedup-verify-") as tmp:
        folder = Path(tmp) / "photos"
        folder.mkdir()
        write_corpus(folder, args.photos)
        with Store(Path(tmp) / "db.sqlite") as store:
            found = scan(folder)
            embed_root(folder, store, spec, EmbedOptions(device=resolve_device("cpu")), None, found)
            files, matrix, *_ = load_collection(folder, store, spec, found)
            pairs = similar_pairs(matrix, spec.default_threshold)
            involved = set(pairs.left.tolist()) | set(pairs.right.tolist())
            thumbs = stored_thumbnails([files[i] for i in involved], {folder: store})
        print(
            f"{len(files)} files (12 MP and 3 MP JPEGs), {len(pairs)} candidate pairs at "
            f"{spec.default_threshold}"
        )
        for workers in (1, 2):
            before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            started = time.perf_counter()
            result = confirm_pairs(
                pairs, files, files, thumbs, pictures=PictureCache(), workers=workers
            )
            seconds = time.perf_counter() - started
            grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
            print(
                f"workers={workers}: {seconds:6.2f} s, {len(pairs) / seconds:6.1f} pairs/s, "
                f"{len(involved) / seconds:6.1f} files/s; confirmed {result.counts()}, "
                f"related {len(result.related)}, keypoint checks {result.geometric_checks}, "
                f"peak RSS +{grown:.0f} MB"
            )


if __name__ == "__main__":
    main()
