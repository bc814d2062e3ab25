"""The confirmation cascade every candidate pair goes through before it may be planned.

Embeddings only *propose* pairs: they rate look-alikes (another shot of a scene, another
patch of a texture) as high as real copies. A proposed pair becomes a duplicate only when,
cheapest first:

1. ``exact``: both files have the same bytes;
2. ``pixels``: their stored 32x32 thumbnails agree almost exactly (``verify``; correlation
   >= 0.99), *and* the two files, read again and laid frame on frame, differ nowhere
   (``geometry.match_aligned``): thumbnails alone also agree for two screenshots of one app
   showing different photos, or two aligned portraits of different people;
3. ``geometry``: keypoints map one picture into the other (crops, mirror images, rotations)
   and the dense comparison of ``geometry`` finds no difference. Bounded per file.

Pairs where one picture maps into the other but differs in part of it (an overlay, a caption,
another photo in the same screenshot frame) are *related*: reported, never planned. Pairs
that pass nothing are kept out of every group and listed as ``unconfirmed``.
"""

from __future__ import annotations

import os
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dedup_cli.confirm.geometry import (
    VIEWS,
    GeometricMatch,
    Picture,
    PictureCache,
    match,
    match_aligned,
    opencv_error,
)
from dedup_cli.confirm.thumbnails import MIN_CORRELATION_ALONE, agreeing, view_thumbnail
from dedup_cli.core.files import FileInfo
from dedup_cli.core.methods import EMBEDDING, EXACT, GEOMETRY, PIXELS
from dedup_cli.core.pairs import Pairs, kth_similarity
from dedup_cli.core.progress import Progress
from dedup_cli.media.borders import content_box
from dedup_cli.media.regions import framed_boxes

CROP_AREA = 0.9  # a contained picture showing less of the other than this is a crop of it
MIN_DETAIL = 0.9  # a crop is removable only if its container shows it at this much resolution
PADDING_AREA_SLACK = 0.05  # a container's bars leave the contained picture this much of it
# ... and its content reaches at most this many working pixels beyond the contained picture
# (the keypoint fit's error: letterboxed copies measured 1.4 at most)
PADDING_EDGE = 3.0
PADDED_AREA = 0.98  # a contained picture covering less of its container may be padded
# A turned view of a thumbnail is compared only where its hash is within this many bits of
# the other's (copies measured within 8; this leaves room for JPEG and resizing).
VIEW_HASH_BITS = 16
GEOMETRY_PER_FILE = 10  # geometric checks tried per file, best candidates first
# In a dense region of look-alikes (textures, documents, faces, bursts), where a file still
# has a full neighbourhood of ``neighbours`` unproved candidates after the cheap checks, a
# keypoint check goes only to a pair that is among the nearest ``neighbours`` unproved
# candidates of *both* files (mutual nearest neighbours): a copy is, most look-alikes are
# not. Copies the cheap checks proved do not count, so a photo with 25 copies is not a dense
# region once they are proved. On the calibration corpus this spends 1,419 fewer keypoint
# checks than the per-file budget alone, with the same recall (docs/benchmarks.md).
# Unconfirmed pairs are the embedding's look-alikes: hundreds of thousands in a large
# collection (1.36 million at 122,000 files, 700 MB as Python objects and 190 MB of JSON).
# The most similar are listed by name, the rest counted.
UNCONFIRMED_LISTED = 1000
CHUNK = 256  # pairs checked together (at most 512 files: well inside the picture cache)
RELATED_REASON = (
    "differs in part of the picture: an overlay or caption, or another photo in the same frame"
)
LESS_DETAIL_REASON = "shown smaller inside the other picture (e.g. a photo in a screenshot)"
FRAMED_REASON = "shown inside a frame of the other picture (a caption bar, an interface, a page)"
FRAMED_SHARE = 0.9  # of the contained picture's place in the container, inside a framed box


@dataclass
class Confirmation:
    """The confirmed subset of the candidates, and how each was confirmed."""

    pairs: Pairs
    methods: list[str]
    crop_of: list[int]  # per confirmed pair: 0 = left is a crop of right, 1 = right of left, -1
    # The most similar ``UNCONFIRMED_LISTED`` pairs no check confirmed, most similar first.
    unconfirmed: list[dict[str, Any]] = field(default_factory=list)
    unconfirmed_count: int = 0  # all of them
    # Pairs where one picture is an edit of the other or shares its frame: reported, kept.
    related: list[dict[str, Any]] = field(default_factory=list)
    geometric_checks: int = 0
    # Files proved to be another's picture padded with uniform bars (absolute paths): the
    # keep rule ranks them by the pixels inside their bars (``core.keep``).
    padded: set[str] = field(default_factory=set)
    # How many checks of each kind ran (thumbnails, pixels, keypoints), and how many pairs
    # were not given a keypoint check because they did not stand out or a file's budget was
    # spent.
    proofs: dict[str, int] = field(default_factory=dict)
    # Rows of the candidates no check looked at beyond the thumbnails (a file's keypoint
    # budget was spent, or the pair did not stand out): unproved, not disproved, so a later
    # round that needs the pair (a file against its group's keeper) may still prove it.
    unchecked: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def counts(self) -> dict[str, int]:
        return dict(Counter(self.methods))

    @classmethod
    def unverified(cls, candidates: Pairs) -> Confirmation:
        """Every candidate taken on the embedding alone (``--no-verify``)."""
        return cls(candidates, [EMBEDDING] * len(candidates), [-1] * len(candidates))


def confirm_pairs(
    candidates: Pairs,
    left: Sequence[FileInfo],
    right: Sequence[FileInfo],
    thumbnails: Mapping[Path, bytes | None],
    *,
    geometric: bool = True,
    per_file: int = GEOMETRY_PER_FILE,
    pictures: PictureCache | None = None,
    workers: int | None = None,
    neighbours: int | None = None,
    progress: Progress | None = None,
    first: np.ndarray | None = None,
    runner: CheckRunner | None = None,
) -> Confirmation:
    """Run the cascade on candidate pairs ``(left[i], right[j])``.

    ``left`` and ``right`` may be the same list (one collection); ``thumbnails`` holds the
    stored thumbnail of each file by its absolute path (files of several folders may share a
    relative one). Keypoint checks go to the
    most similar unconfirmed pairs first, at most ``per_file`` per file, and, for a file
    that still has ``neighbours`` unproved candidates, only to mutual nearest neighbours:
    a folder of look-alike textures cannot make this quadratic in work. The checks run on
    ``workers`` threads (default: one per CPU; decoding and OpenCV release the GIL).
    ``progress`` hears of each stage and each check. ``first`` (a mask of the candidates):
    pairs another channel proposed, which the embedding rates low by nature; they get their
    keypoint checks first and need not be mutual neighbours (the per-file budget holds).
    ``runner``: where the checks that read files run (default: ``workers`` threads here;
    ``distributed.proof`` runs them on a Ray cluster)."""
    n = len(candidates)
    method: list[str | None] = [None] * n
    crop: list[int] = [-1] * n
    reason: dict[int, str] = {}
    padded: set[str] = set()
    cache = pictures if pictures is not None else PictureCache()
    run_checks = runner or local_checks(cache, workers)
    lefts, rights = candidates.left.tolist(), candidates.right.tolist()
    proofs: Counter[str] = Counter()
    watch = progress or Progress()
    # One FileInfo per file, not one per pair and look (a FileTable builds them on access).
    known_left: dict[int, FileInfo] = {}
    known_right: dict[int, FileInfo] = known_left if right is left else {}

    def files(k: int) -> tuple[FileInfo, FileInfo]:
        i, j = lefts[k], rights[k]
        if i not in known_left:
            known_left[i] = left[i]
        if j not in known_right:
            known_right[j] = right[j]
        return known_left[i], known_right[j]

    same = [
        a.content_hash is not None and a.content_hash == b.content_hash
        for a, b in map(files, range(n))
    ]
    to_screen = [k for k in range(n) if not same[k]]
    for k in range(n):
        if same[k]:
            method[k] = EXACT
    watch.start(len(to_screen), "proving: thumbnails")
    proofs["thumbnails"] = len(to_screen)
    agree = agreeing(
        [thumbnails.get(files(k)[0].absolute) for k in to_screen],
        [thumbnails.get(files(k)[1].absolute) for k in to_screen],
        MIN_CORRELATION_ALONE,
    )
    aligned = [k for k, passed in zip(to_screen, agree.tolist()) if passed]
    watch.advance(len(to_screen))
    proofs["pixels"] = len(aligned)
    watch.start(len(aligned), "proving: pixels")

    def check(kind: str, k: int, view: int = 0) -> Check:
        fa, fb = files(k)
        return Check(kind, str(fa.absolute), str(fb.absolute), view)

    for k, found in zip(aligned, run_checks([check(ALIGNED, k) for k in aligned])):
        watch.advance(1)
        if found is not None and found.is_copy:
            method[k] = PIXELS
        elif found is not None:
            reason[k] = RELATED_REASON
    # A quarter turn or a mirror image: the thumbnails agree once one is turned the same
    # way, and the files, turned, lie frame on frame. No keypoints needed.
    unturned = [k for k in to_screen if method[k] is None and k not in reason]
    turned = _turned_agreement(
        [thumbnails.get(files(k)[0].absolute) for k in unturned],
        [thumbnails.get(files(k)[1].absolute) for k in unturned],
    )
    view_of = {k: view for k, view in zip(unturned, turned) if view}
    turned_checks = sorted(view_of)
    proofs["pixels_turned"] = len(turned_checks)
    watch.start(len(turned_checks), "proving: turned pixels")

    for k, found in zip(
        turned_checks, run_checks([check(TURNED, k, view_of[k]) for k in turned_checks])
    ):
        watch.advance(1)
        if found is not None and found.is_copy:
            method[k] = PIXELS
    keypoint_checks: list[int] = []
    unchecked: list[int] = []
    if geometric:
        level = _levels(candidates, method, neighbours, len(left), len(right), left is right)
        tried: Counter[str] = Counter()
        ahead = np.zeros(n, dtype=bool) if first is None else first
        for k in np.lexsort((-candidates.similarity, ~ahead)).tolist():
            if method[k] is not None:
                continue
            if candidates.similarity[k] < level[k] and not ahead[k]:
                proofs["keypoints_not_mutual"] += 1
                unchecked.append(k)
                continue
            a_key, b_key = (str(f.absolute) for f in files(k))
            if tried[a_key] < per_file and tried[b_key] < per_file:
                tried[a_key] += 1
                tried[b_key] += 1
                keypoint_checks.append(k)
            else:
                proofs["keypoints_over_budget"] += 1
                unchecked.append(k)
        keypoint_checks = _cache_order(
            keypoint_checks, lefts, rights, 0 if right is left else len(left)
        )
    proofs["keypoints"] = len(keypoint_checks)
    watch.start(len(keypoint_checks), "proving: keypoints")

    for k, found in zip(
        keypoint_checks, run_checks([check(KEYPOINTS, k) for k in keypoint_checks])
    ):
        watch.advance(1)
        if found is None:
            continue
        if not found.is_copy:
            reason[k] = RELATED_REASON
            continue
        fa, fb = files(k)
        if found.area < PADDED_AREA and _padding(found, cache, fa, fb):
            padded.add(str((fb if found.contained == 0 else fa).absolute))
        elif found.area < CROP_AREA:
            inner, outer = (fa, fb) if found.contained == 0 else (fb, fa)
            if _detail(found, cache, inner, outer) < MIN_DETAIL:
                reason[k] = LESS_DETAIL_REASON
                continue  # e.g. a photo inside a screenshot: the photo has more detail
            if _framed(found, cache, outer):
                reason[k] = FRAMED_REASON
                continue  # a photo in a frame under a caption bar: the frame is no crop
            crop[k] = found.contained
        reason.pop(k, None)
        method[k] = GEOMETRY
    checks = len(keypoint_checks)
    watch.finish()
    keep = np.array([m is not None for m in method], dtype=bool)

    reported = keep.copy()
    reported[list(reason)] = True  # related pairs are listed on their own
    unconfirmed = np.flatnonzero(~reported)

    def entry(k: int) -> dict[str, Any]:
        return {
            "a": str(left[lefts[k]].absolute),
            "b": str(right[rights[k]].absolute),
            "similarity": round(float(candidates.similarity[k]), 6),
        }

    return Confirmation(
        pairs=Pairs(candidates.left[keep], candidates.right[keep], candidates.similarity[keep]),
        methods=[m for m in method if m is not None],
        crop_of=[c for c, m in zip(crop, method) if m is not None],
        unconfirmed=[entry(k) for k in most_similar(unconfirmed, candidates.similarity)],
        unconfirmed_count=len(unconfirmed),
        related=[{**entry(k), "reason": why} for k, why in sorted(reason.items())],
        padded=padded,
        geometric_checks=checks,
        proofs=dict(proofs),
        unchecked=np.array(unchecked, dtype=np.int64),
    )


def most_similar_entries(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ``UNCONFIRMED_LISTED`` most similar of listed pairs (two proofs merged)."""
    ranked = sorted(entries, key=lambda pair: -float(pair["similarity"]))
    return ranked[:UNCONFIRMED_LISTED]


def most_similar(rows: np.ndarray, similarity: np.ndarray) -> list[int]:
    """The ``UNCONFIRMED_LISTED`` of ``rows`` with the highest similarity, highest first."""
    order = np.argsort(-similarity[rows], kind="stable")[:UNCONFIRMED_LISTED]
    listed: list[int] = rows[order].tolist()
    return listed


def _levels(
    candidates: Pairs,
    method: Sequence[str | None],
    neighbours: int | None,
    n_left: int,
    n_right: int,
    one_collection: bool,
) -> np.ndarray:
    """The similarity each pair must reach to earn a keypoint check: the ``neighbours``-th
    best unproved candidate of either file, so only mutual nearest neighbours pass (-inf
    where both files have fewer)."""
    if neighbours is None or len(candidates) == 0:
        return np.full(len(candidates), -np.inf, dtype=np.float32)
    unproved = np.array([m is None for m in method], dtype=bool)
    still = Pairs(
        candidates.left[unproved], candidates.right[unproved], candidates.similarity[unproved]
    )
    if one_collection:
        of_left = of_right = kth_similarity(still, n_left, neighbours)
    else:
        of_left = kth_similarity(still, n_left, neighbours, side="left")
        of_right = kth_similarity(still, n_right, neighbours, side="right")
    level: np.ndarray = np.maximum(of_left[candidates.left], of_right[candidates.right])
    return level


def _cache_order(checks: list[int], lefts: list[int], rights: list[int], offset: int) -> list[int]:
    """The checks in an order that reads each file once: files numbered breadth first
    through the graph of checked pairs (a file's candidates, then theirs), and pairs run in
    the order their later file is reached. Look-alikes form tight neighbourhoods, so the
    files in use at once stay few and the picture cache (and each file's keypoints) is read
    once; sorted by left file alone, the right files of 2,440 look-alike photos were read
    twice over. ``offset`` numbers the right files apart when the two sides are different
    collections."""
    neighbours: dict[int, list[int]] = {}
    for k in checks:
        a, b = lefts[k], rights[k] + offset
        neighbours.setdefault(a, []).append(b)
        neighbours.setdefault(b, []).append(a)
    position: dict[int, int] = {}
    for start in sorted(neighbours, key=lambda f: (-len(neighbours[f]), f)):
        if start in position:
            continue
        position[start] = len(position)
        queue = deque([start])
        while queue:
            for other in neighbours[queue.popleft()]:
                if other not in position:
                    position[other] = len(position)
                    queue.append(other)

    def reached(k: int) -> tuple[int, int]:
        a, b = position[lefts[k]], position[rights[k] + offset]
        return max(a, b), min(a, b)

    return sorted(checks, key=reached)


def _turned_agreement(left: Sequence[bytes | None], right: Sequence[bytes | None]) -> list[int]:
    """For each pair of thumbnails, the first of the seven other views of the right one
    (``geometry.VIEWS``: quarter turns, each mirrored) under which the two agree as copies'
    thumbnails do, or 0 when none does. A view is compared only where the thumbnails'
    hashes in it are close (``search.orientations``), so unrelated pairs cost a hash."""
    from dedup_cli.search.orientations import orientation_hashes, popcount, thumbnail_stack

    found = [0] * len(left)
    stack_l, good_l = thumbnail_stack(list(left))
    stack_r, good_r = thumbnail_stack(list(right))
    both = np.intersect1d(good_l, good_r)
    if not len(both):
        return found
    hashes_l = np.zeros((len(left), 8), np.uint64)
    hashes_r = np.zeros((len(right), 8), np.uint64)
    hashes_l[good_l] = orientation_hashes(stack_l)
    hashes_r[good_r] = orientation_hashes(stack_r)
    distance = popcount(hashes_l[both, :1] ^ hashes_r[both])  # (pairs, 8)
    for view in range(1, len(VIEWS)):
        todo = [
            int(k) for k, d in zip(both, distance[:, view]) if d <= VIEW_HASH_BITS and not found[k]
        ]
        if not todo:
            continue
        agree = agreeing(
            [left[k] for k in todo],
            [view_thumbnail(right[k], view) for k in todo],
            MIN_CORRELATION_ALONE,
        )
        for k, passed in zip(todo, agree.tolist()):
            if passed:
                found[k] = view
    return found


def _padding(found: GeometricMatch, cache: PictureCache, a: FileInfo, b: FileInfo) -> bool:
    """Whether the container is the contained picture plus uniform bars (letterbox,
    pillarbox, padding: ``media.borders``): then neither is a crop of the other, they are
    copies, and the keep rule chooses between them. The container's content must lie
    inside the contained picture's place, not only be as large: a 70 % crop of a page scan
    with a margin has the area of the page's content, but a line at its foot is not in it."""
    outer = cache.get((b if found.contained == 0 else a).absolute)
    if outer is None:
        return False
    box = content_box(np.repeat(outer.gray[..., None], 3, axis=2))
    if box is None:
        return False
    height, width = outer.gray.shape
    inside = (box[2] - box[0]) * (box[3] - box[1]) / outer.gray.size
    if abs(inside - found.area) > PADDING_AREA_SLACK:
        return False
    left, top, right, bottom = found.box
    beyond = max(
        left * width - box[0],
        top * height - box[1],
        box[2] - right * width,
        box[3] - bottom * height,
    )
    return bool(beyond <= PADDING_EDGE)


def _framed(found: GeometricMatch, cache: PictureCache, outer: FileInfo) -> bool:
    """Whether the container shows the contained picture (or a part of it) inside a light
    frame or page (a post, a caption bar, a figure on a page: ``media.regions.
    framed_boxes``) rather than as part of a larger photo: the frame adds content of its
    own, so the pair is related, as any overlay, and neither is a crop of the other."""
    picture = cache.get(outer.absolute)
    if picture is None:
        return False
    return any(_share_inside(found.box, box) >= FRAMED_SHARE for box in framed_boxes(picture.gray))


def _share_inside(
    a: tuple[float, float, float, float], b: tuple[float, float, float, float]
) -> float:
    """The share of box ``a`` that lies inside box ``b``."""
    across = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    down = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    area = (a[2] - a[0]) * (a[3] - a[1])
    return across * down / area if area > 0 else 0.0


def _detail(found: GeometricMatch, cache: PictureCache, inner: FileInfo, outer: FileInfo) -> float:
    """Container pixels per contained-picture pixel, in the files' own resolutions (the
    match is measured on images shrunk to the working size)."""
    inner_picture = cache.get(inner.absolute)
    outer_picture = cache.get(outer.absolute)
    if inner_picture is None or outer_picture is None:
        return 0.0
    inner_work = max(inner_picture.gray.shape)
    outer_work = max(outer_picture.gray.shape)
    inner_real = max(inner.width or 0, inner.height or 0) or inner_work
    outer_real = max(outer.width or 0, outer.height or 0) or outer_work
    return float(found.scale * (outer_real / outer_work) / (inner_real / inner_work))


ALIGNED, TURNED, KEYPOINTS = "aligned", "turned", "keypoints"  # the checks that read files


@dataclass(frozen=True)
class Check:
    """One check of the cascade that reads two files: ``kind`` (``ALIGNED``: frame on
    frame; ``TURNED``: frame on frame with ``b`` seen in ``geometry.VIEWS[view]``;
    ``KEYPOINTS``: a keypoint fit), by absolute path, so that it can run anywhere the
    files are."""

    kind: str
    a: str
    b: str
    view: int = 0


# Runs checks and gives their results in the same order (None: no match, or unreadable).
CheckRunner = Callable[[list[Check]], Iterator["GeometricMatch | None"]]


def run_check(check: Check, cache: PictureCache) -> GeometricMatch | None:
    """One check, the pictures read through ``cache``."""
    a, b = cache.get(check.a), cache.get(check.b)
    if check.kind == KEYPOINTS:
        return checked(match, a, b)
    if check.kind == TURNED and b is not None:
        b = b.viewed(check.view)
    return checked(match_aligned, a, b)


def local_checks(cache: PictureCache, workers: int | None = None) -> CheckRunner:
    """Checks on ``workers`` threads of this process (default: one per CPU)."""

    def run(checks: list[Check]) -> Iterator[GeometricMatch | None]:
        for _, found in _in_parallel(
            lambda k: run_check(checks[k], cache), list(range(len(checks))), workers
        ):
            yield found

    return run


def _in_parallel(
    check: Callable[[int], GeometricMatch | None], items: list[int], workers: int | None
) -> Iterator[tuple[int, GeometricMatch | None]]:
    """``(item, check(item))`` in order, computed on a thread pool in chunks, so that the
    pictures a chunk needs stay in the cache while it runs."""
    threads = workers or os.cpu_count() or 1
    if threads == 1 or len(items) < 2:
        yield from ((k, check(k)) for k in items)
        return
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="dedup-verify") as pool:
        for start in range(0, len(items), CHUNK):
            chunk = items[start : start + CHUNK]
            yield from zip(chunk, pool.map(check, chunk))


def checked(
    check: Callable[[Picture, Picture], GeometricMatch | None],
    a: Picture | None,
    b: Picture | None,
) -> GeometricMatch | None:
    """Run one check; an unreadable file or an OpenCV error leaves the pair unconfirmed
    (None)."""
    if a is None or b is None:
        return None
    try:
        return check(a, b)
    except opencv_error():
        return None
