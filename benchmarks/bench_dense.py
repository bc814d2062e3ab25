"""``dedup find`` with the proof on, where everything looks alike: is the work per file?

Each scenario writes a folder, runs ``dedup hash`` and then ``dedup find --json`` as child
processes of the CLI (default settings: proof on), and prints wall time, the child's own
peak RSS (``os.wait4``), candidates proposed and proofs run by kind.

- ``identical``: N byte-identical JPEGs (one node, or N^2/2 pairs);
- ``noise``: N distinct 16x12 noise PNGs (the model rates nearly every pair >= 0.75);
- ``realistic``: N distinct photos made from the sample photos (random crops, scales and
  colour jitter), 5 % in bursts of 3-5 frames and 2 % texture patches (look-alikes, never to
  be grouped), plus 1 % planted copies of every easy and hard transform: recall by tier and
  the look-alikes grouped are printed;
- ``lookalike``: the calibration corpus (``calibrate_threshold.py``: real photos, their easy
  and hard copies, pan frames, texture patches, faces), ``find`` from a fresh database
  against imagededup's PHash (``find_duplicates`` on the same folder, same run).

    python benchmarks/bench_dense.py identical --n 3000
    python benchmarks/bench_dense.py noise --n 10000
    python benchmarks/bench_dense.py lookalike
    python benchmarks/bench_dense.py realistic --n 100000 --workdir /tmp/realistic
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
DEDUP = [sys.executable, "-m", "dedup_cli"]


def jpeg(image: Image.Image, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def write_identical(root: Path, n: int) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    data = jpeg(Image.fromarray(small).resize((256, 256), Image.Resampling.BICUBIC))
    for k in range(n):
        folder = root / f"d{k // 1000:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"same_{k:06d}.jpg").write_bytes(data)
    return {"files": n, "expected_removals": n - 1}


def write_noise(root: Path, n: int) -> dict[str, Any]:
    rng = np.random.default_rng(1)
    for k in range(n):
        folder = root / f"d{k // 1000:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"noise_{k:06d}.png")
    return {"files": n, "expected_removals": 0}


SOURCES = [
    "astronaut", "brick", "camera", "cat", "cell", "chelsea", "clock", "coffee", "coins",
    "colorwheel", "grass", "gravel", "horse", "hubble_deep_field", "immunohistochemistry",
    "logo", "moon", "page", "retina", "rocket", "text",
]  # fmt: skip
TEXTURE_SOURCES = ["brick", "grass", "gravel"]


def source_photos() -> list[Image.Image]:
    """Every photo scikit-image and scikit-learn ship, as RGB."""
    import skimage.data as data
    from sklearn.datasets import load_sample_images

    out = []
    for name in SOURCES:
        array = getattr(data, name)()
        if array.dtype != np.uint8:
            array = (255 * (array.astype(float) / max(float(array.max()), 1.0))).astype(np.uint8)
        out.append(Image.fromarray(array).convert("RGB"))
    left, right = data.stereo_motorcycle()[:2]
    out += [Image.fromarray(left), Image.fromarray(right)]
    out += [Image.fromarray(image) for image in load_sample_images().images]
    return out


def jittered(image: Image.Image, draws: tuple[float, float, float, float]) -> Image.Image:
    from PIL import ImageEnhance, ImageOps

    brightness, contrast, colour, flip = draws
    image = ImageEnhance.Brightness(image).enhance(brightness)
    image = ImageEnhance.Contrast(image).enhance(contrast)
    image = ImageEnhance.Color(image).enhance(colour)
    return ImageOps.mirror(image) if flip < 0.5 else image


def jitter_draws(rng: np.random.Generator) -> tuple[float, float, float, float]:
    return (rng.uniform(0.7, 1.3), rng.uniform(0.7, 1.3), rng.uniform(0.5, 1.5), rng.random())


def tilted(image: Image.Image, corners_moved: np.ndarray) -> Image.Image:
    """The picture as seen from a slightly different angle: each corner moved by a share
    of the size drawn by the caller (a perspective change no crop, scale or rotation
    explains)."""
    import cv2

    w, h = image.size
    corners = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    moved = corners + corners_moved.astype(np.float32) * [w, h]
    matrix = cv2.getPerspectiveTransform(corners, moved.astype(np.float32))
    warped = cv2.warpPerspective(np.asarray(image), matrix, (w, h), borderMode=cv2.BORDER_REFLECT)
    return Image.fromarray(warped)


@dataclass
class Shot:
    """One generated photo, drawn before any pixel is made (so the truth of a corpus can be
    drawn again without making it): its source photo, the box it shows, and its burst."""

    kind: str  # "photo", "burst" or "texture"
    source: int  # index in SOURCES order (source_photos())
    box: tuple[int, int, int, int]
    size: tuple[int, int]  # pixels of the saved picture before tilt and jitter
    burst: int = -1  # frames of one burst share this number
    tilt: np.ndarray | None = None
    jitter: tuple[float, float, float, float] | None = None
    quality: int = 90


def draw_photo(sizes: list[tuple[int, int]], rng: np.random.Generator) -> Shot:
    """A random crop (a quarter to two thirds of a side, any aspect) of a random source,
    seen from a slightly different angle, scaled to 240-400 px and colour-jittered: another
    shot of a known part of a photo. Two such shots of one source can still nest (one
    region inside the other): the scorer tells those apart."""
    k = int(rng.integers(len(sizes)))
    w, h = sizes[k]
    cw = int(min(w, h) * rng.uniform(0.25, 0.67))
    ch = int(cw * rng.uniform(0.6, 1.4))
    ch = min(ch, h - 1)
    x0, y0 = int(rng.integers(0, w - cw)), int(rng.integers(0, h - ch))
    side = int(rng.integers(240, 400))
    scale = side / max(cw, ch)
    size = (max(8, int(cw * scale)), max(8, int(ch * scale)))
    tilt = rng.uniform(-0.08, 0.08, (4, 2))
    return Shot("photo", k, (x0, y0, x0 + cw, y0 + ch), size, tilt=tilt, jitter=jitter_draws(rng))


def draw_realistic(sizes: list[tuple[int, int]], n: int) -> tuple[list[Shot], np.random.Generator]:
    """The shots of ``write_realistic`` in order, and the generator after them (it goes on
    to choose the planted copies)."""
    rng = np.random.default_rng(4)
    texture_indices = [SOURCES.index(t) for t in TEXTURE_SOURCES]
    shots: list[Shot] = []
    bursts = 0
    while len(shots) < n:
        roll = rng.random()
        if roll < 0.05 / 4:  # a burst: 3-5 frames, a few pixels apart
            base = draw_photo(sizes, rng)
            x0, y0, x1, y1 = base.box
            width, height = sizes[base.source]
            step = max(4, (x1 - x0) // 25)  # the camera moves 4 % between frames
            for frame in range(int(rng.integers(3, 6))):
                dx, dy = step * frame, int(rng.integers(-step, step + 1))
                box = (max(0, x0 + dx), max(0, y0 + dy), min(width, x1 + dx), min(height, y1 + dy))
                tilt = rng.uniform(-0.02, 0.02, (4, 2))
                shots.append(Shot("burst", base.source, box, base.size, bursts, tilt))
                shots[-1].quality = int(rng.integers(80, 96))
            bursts += 1
        elif roll < 0.05 / 4 + 0.02:  # a patch of a texture
            source = texture_indices[int(rng.integers(len(texture_indices)))]
            width, height = sizes[source]
            side = int(rng.integers(60, 160))
            x0 = int(rng.integers(0, width - side))
            y0 = int(rng.integers(0, height - side))
            shots.append(Shot("texture", source, (x0, y0, x0 + side, y0 + side), (256, 256)))
            shots[-1].quality = int(rng.integers(80, 96))
        else:
            shots.append(draw_photo(sizes, rng))
            shots[-1].quality = int(rng.integers(80, 96))
    return shots, rng


def shot_name(number: int) -> str:
    return f"d{number // 1000:03d}/p{number:06d}.jpg"


def make_shot(shot: Shot, sources: list[Image.Image]) -> Image.Image:
    image = sources[shot.source].crop(shot.box).resize(shot.size)
    if shot.tilt is not None:
        image = tilted(image, shot.tilt)
    return jittered(image, shot.jitter) if shot.jitter is not None else image


def write_realistic(root: Path, n: int) -> dict[str, Any]:
    """``n`` photos (random crops of the sample photos, scaled and colour-jittered), of
    which 5 % are in bursts of 3-5 frames a few pixels apart (distinct shots: never to be
    grouped) and 2 % are patches of one texture; then 1 % planted copies of every easy and
    hard transform (``media.transforms``). The truth goes to ``truth.json`` beside the folder."""
    from dedup_cli.media.transforms import TIERS

    sources = source_photos()
    shots, rng = draw_realistic([s.size for s in sources], n)
    names: list[str] = []
    for number, shot in enumerate(shots):
        name = shot_name(number)
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(jpeg(make_shot(shot, sources), shot.quality))
        names.append(name)
    planted: list[tuple[str, str, str]] = []
    for tier, transforms in TIERS.items():
        for family, transform in transforms.items():
            for original in rng.choice(len(names), max(1, n // 100), replace=False).tolist():
                image = Image.open(root / names[original]).convert("RGB")
                blob, ext = transform(image)
                name = f"copies/{tier}/{family}/{len(planted):06d}{ext}"
                (root / name).parent.mkdir(parents=True, exist_ok=True)
                (root / name).write_bytes(blob)
                planted.append((names[original], name, tier))
    truth = {"photos": len(names), "planted": planted}
    (root.parent / f"{root.name}.truth.json").write_text(json.dumps(truth))
    return {"files": len(names) + len(planted), "planted_copies": len(planted)}


NESTED = 0.9  # a shot whose box lies this much inside another's shows a crop of it


def score_realistic(root: Path, document: dict[str, Any]) -> dict[str, int]:
    """Recall of the planted copies by tier (copy and original in one group), and every
    other removal against its keeper, drawn again from the generator: a shot whose region of
    the source lies inside the keeper's (``NESTED``) is a crop of it up to the 8 % tilt (two
    random crops of one photo can nest), counted apart; anything else (a burst frame, a
    texture patch, an overlapping or unrelated shot) is a look-alike wrongly grouped."""
    truth = json.loads((root.parent / f"{root.name}.truth.json").read_text())
    base = str(root.resolve())
    copy_of = {f"{base}/{c}": f"{base}/{o}" for o, c, _ in truth["planted"]}
    shots, _rng = draw_realistic([s.size for s in source_photos()], truth["photos"])
    number_of = {f"{base}/{shot_name(k)}": k for k in range(len(shots))}

    def shot_of(path: str) -> Shot:
        return shots[number_of[copy_of.get(path, path)]]

    group_of: dict[str, int] = {}
    outcome: dict[str, int] = {"nested crop": 0, "burst frame": 0, "texture": 0, "other": 0}
    for number, group in enumerate(document["groups"]):
        keep = group["keep"]
        group_of[keep] = number
        for removed in group["remove"]:
            group_of[removed] = number
            inner, outer = shot_of(removed), shot_of(keep)
            if inner is outer:
                continue  # copies of one photo
            if inner.kind == "burst" and inner.burst == outer.burst:
                outcome["burst frame"] += 1
            elif inner.source == outer.source and _inside(inner.box, outer.box) >= NESTED:
                outcome["nested crop"] += 1
            elif inner.kind == "texture" or outer.kind == "texture":
                outcome["texture"] += 1
            else:
                outcome["other"] += 1
    for tier in ("easy", "hard"):
        pairs = [(f"{base}/{o}", f"{base}/{c}") for o, c, t in truth["planted"] if t == tier]
        found = sum(1 for o, c in pairs if o in group_of and group_of.get(c, -1) == group_of[o])
        print(f"{tier:5s} recall {found / len(pairs):.3f} ({found}/{len(pairs)})")
    wrong = sum(v for k, v in outcome.items() if k != "nested crop")
    print(
        f"removals of a shot nested in its keeper's region (a crop of it): {outcome['nested crop']}"
    )
    details = ", ".join(f"{k} {v}" for k, v in outcome.items() if k != "nested crop")
    print(f"look-alikes removed (must be 0): {wrong} ({details})")
    return outcome


def _inside(inner: tuple[int, int, int, int], outer: tuple[int, int, int, int]) -> float:
    """Share of box ``inner`` that lies inside box ``outer``."""
    width = max(0, min(inner[2], outer[2]) - max(inner[0], outer[0]))
    height = max(0, min(inner[3], outer[3]) - max(inner[1], outer[1]))
    area = max(1, (inner[2] - inner[0]) * (inner[3] - inner[1]))
    return width * height / area


def measured(command: list[str]) -> tuple[float, float, str]:
    """Wall seconds, the child's own peak RSS (MB) and its stdout."""
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stderr is not None
    out = child.stdout.read()
    err = child.stderr.read()
    _pid, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 1):
        raise RuntimeError(f"{' '.join(command)} failed ({code}):\n{err[-3000:]}")
    return wall, usage.ru_maxrss / 1024, out


def hash_and_find(root: Path, extra: list[str]) -> dict[str, Any]:
    hash_wall, hash_rss, _ = measured([*DEDUP, "hash", str(root), "-q", *extra])
    find_wall, find_rss, out = measured([*DEDUP, "find", str(root), "--json", *extra])
    document = json.loads(out)
    return {
        "hash_s": hash_wall,
        "hash_rss_mb": hash_rss,
        "find_s": find_wall,
        "find_rss_mb": find_rss,
        "document": document,
    }


def report(label: str, facts: dict[str, Any], result: dict[str, Any]) -> None:
    stats = result["document"]["stats"]
    summary = result["document"]["summary"]
    print(f"\n== {label}: {json.dumps(facts)}")
    print(
        f"hash  {result['hash_s']:8.1f} s  peak {result['hash_rss_mb']:7.0f} MB\n"
        f"find  {result['find_s']:8.1f} s  peak {result['find_rss_mb']:7.0f} MB  "
        f"(find/hash = {result['find_s'] / max(result['hash_s'], 1e-9):.2f})"
    )
    keys = (
        "files_compared",
        "candidate_pairs",
        "confirmed_pairs",
        "confirmed_by",
        "proofs",
        "geometric_checks",
        "search_seconds",
        "proof_seconds",
        "peak_memory_mb",
    )
    print("stats " + json.dumps({k: stats.get(k) for k in keys}))
    print(f"plan  groups {summary['groups']}, files to remove {summary['files_to_remove']}")


def lookalike(workdir: Path, extra: list[str], faces: int, phash: bool) -> None:
    from calibrate_threshold import build_corpus

    folder = workdir / "corpus"
    samples_file = workdir / "samples.json"
    if not samples_file.exists():
        folder.mkdir(parents=True, exist_ok=True)
        built = build_corpus(folder, faces)
        samples_file.write_text(json.dumps([s.__dict__ for s in built]))
    from dedup_cli.jobs.bench import Sample

    samples = [Sample(**s) for s in json.loads(samples_file.read_text())]
    database = workdir / "fresh.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    wall, rss, out = measured(
        [*DEDUP, "find", str(folder), "--db", str(database), "--json", *extra]
    )
    document = json.loads(out)
    (workdir / "find.json").write_text(out)
    print(f"\n== lookalike corpus: {len(samples)} files, find from a fresh database")
    print(f"dedup find       {wall:6.1f} s  peak {rss:6.0f} MB")
    stats = document["stats"]
    keys = ("candidate_pairs", "confirmed_pairs", "confirmed_by", "proofs", "geometric_checks")
    print("stats " + json.dumps({k: stats.get(k) for k in keys}))
    score_plan(document, folder, samples)
    if phash:
        code = (
            "import sys, time\n"
            "from imagededup.methods import PHash\n"
            "PHash(verbose=False).find_duplicates(image_dir=sys.argv[1])\n"
        )
        p_wall, p_rss, _ = measured([sys.executable, "-c", code, str(folder)])
        print(
            f"imagededup PHash {p_wall:6.1f} s  peak {p_rss:6.0f} MB   "
            f"dedup / PHash = {wall / p_wall:.2f}"
        )


def score_plan(document: dict[str, Any], folder: Path, samples: list[Any]) -> None:
    """Recall: a planted copy counts when one group holds it and its original (both are then
    proved copies of the keeper); found recall also counts it when it is listed related to
    the original or to a file grouped with it (an overlay, a screenshot). Precision: over
    what the plan asserts, each removed file against its keeper; a pair of different
    photos, or of two look-alikes of one (pan frames, texture patches), is false. A pan
    frame or patch removed in favour of its own photo (or a copy of it), or a patch removed
    in favour of a pan frame that contains it, is a crop of it: not scored, as
    calibrate_threshold.py says."""
    from dedup_cli.jobs.bench import LOOKALIKE

    index = {str(folder.resolve() / s.path): k for k, s in enumerate(samples)}
    together: set[tuple[int, int]] = set()
    asserted: list[tuple[int, int]] = []
    for group in document["groups"]:
        keeper = index[group["keep"]]
        members = sorted([keeper, *(index[p] for p in group["remove"])])
        together |= {(a, b) for n, a in enumerate(members) for b in members[n + 1 :]}
        asserted += [(keeper, index[p]) for p in group["remove"]]
    true = false = 0
    for keeper, removed in asserted:
        a, b = samples[keeper], samples[removed]
        if a.source == b.source and _patch_inside_pan(b.path, a.path):
            continue  # a crop of the pan frame, as of its photo: not scored
        if a.source != b.source or (a.tier == LOOKALIKE and b.tier == LOOKALIKE):
            false += 1
        elif LOOKALIKE not in (a.tier, b.tier):
            true += 1
    # Found: grouped, or listed related to the original or to a file of its group (a
    # relation is listed for the file that stays: the group's keeper).
    group_of: dict[int, set[int]] = {}
    for group in document["groups"]:
        members_set = {index[group["keep"]], *(index[p] for p in group["remove"])}
        group_of.update({m: members_set for m in members_set})
    related = {
        (min(index[r["a"]], index[r["b"]]), max(index[r["a"]], index[r["b"]]))
        for r in document.get("related", [])
        if r["a"] in index and r["b"] in index
    }
    originals = {s.source: k for k, s in enumerate(samples) if s.family == "original"}
    for tier in ("easy", "hard"):
        planted = [
            (originals[s.source], k)
            for k, s in enumerate(samples)
            if s.tier == tier and s.source in originals
        ]
        found = sum(1 for o, k in planted if (min(o, k), max(o, k)) in together)
        shown = sum(
            1
            for o, k in planted
            if (min(o, k), max(o, k)) in together
            or any((min(m, k), max(m, k)) in related for m in group_of.get(o, {o}))
        )
        print(
            f"{tier:5s} recall {found / len(planted):.3f} ({found}/{len(planted)}), "
            f"found {shown / len(planted):.3f} ({shown}/{len(planted)})"
        )
    print(
        f"plan: {len(asserted)} removals, precision {true / max(true + false, 1):.4f}, "
        f"look-alikes or other photos removed: {false}"
    )


# calibrate_threshold.py's look-alikes of one photo: pan frame k spans these shares of the
# width (full height), texture patch k is this quarter.
PAN_SPANS = {0: (0.0, 0.6), 1: (0.2, 0.8), 2: (0.4, 1.0)}
PATCH_QUARTERS = {0: (0.0, 0.5), 1: (0.5, 1.0), 2: (0.0, 0.5), 3: (0.5, 1.0)}


def _patch_inside_pan(patch: str, pan: str) -> bool:
    """Whether texture patch ``patch`` lies inside pan frame ``pan`` (both of one photo):
    then it is a crop of that frame, which calibrate_threshold.py does not score."""
    patch_name, pan_name = Path(patch).stem, Path(pan).stem
    if "_patch" not in patch_name or "_pan" not in pan_name:
        return False
    left, right = PATCH_QUARTERS[int(patch_name[-1])]
    start, end = PAN_SPANS[int(pan_name[-1])]
    return start <= left and right <= end


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", choices=["identical", "noise", "realistic", "lookalike"])
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--workdir", type=Path, default=None, help="kept between runs")
    parser.add_argument("--faces", type=int, default=200, help="lookalike: LFW faces")
    parser.add_argument("--no-phash", action="store_true")
    parser.add_argument("extra", nargs="*", help="more options for dedup (after --)")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix=f"dense_{args.scenario}_"))
    if args.scenario == "lookalike":
        lookalike(workdir, args.extra, args.faces, not args.no_phash)
        return
    root = workdir / f"{args.scenario}_{args.n}"
    writers = {"identical": write_identical, "noise": write_noise, "realistic": write_realistic}
    facts_file = workdir / f"{args.scenario}_{args.n}.json"
    if facts_file.exists():
        facts = json.loads(facts_file.read_text())
    else:
        root.mkdir(parents=True, exist_ok=True)
        facts = writers[args.scenario](root, args.n)
        facts_file.write_text(json.dumps(facts))
    result = hash_and_find(root, args.extra)
    report(f"{args.scenario} n={args.n}", facts, result)
    (workdir / f"{args.scenario}_{args.n}.find.json").write_text(json.dumps(result["document"]))
    if args.scenario == "realistic":
        score_realistic(root, result["document"])


if __name__ == "__main__":
    main()
