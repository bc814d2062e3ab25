"""The one workflow every job ends with, once it has candidate pairs.

``find``, ``cross`` and ``bench`` differ in where their pairs come from (one folder against
itself, two folders against each other, a corpus of made-up copies) and in which files may
lose (``cross --keep db1``). From the candidates on they are the same: forget the pairs a
reviewer marked "not duplicates", prove the rest from the files (or, with ``--no-verify``,
take the embedding's word), group without chaining, and plan under a keep rule.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dedup_cli.confirm.cascade import (
    GEOMETRY_PER_FILE,
    CheckRunner,
    Confirmation,
    confirm_pairs,
    most_similar_entries,
)
from dedup_cli.confirm.inside import InsideCandidate, prove_inside
from dedup_cli.core.files import FileInfo
from dedup_cli.core.group import Group, group_pairs
from dedup_cli.core.keep import KeeperRank
from dedup_cli.core.pairs import Pairs
from dedup_cli.core.progress import Progress
from dedup_cli.errors import DedupError, UsageError
from dedup_cli.malloc_tuning import give_back_freed_memory
from dedup_cli.media.regions import THUMBNAIL_SIDE, Box, unpack
from dedup_cli.store import Store


class ModelMismatchError(DedupError):
    """The databases of a run hold embeddings of different models or dimensions."""


def validate_threshold(threshold: float) -> float:
    if not 0.0 <= threshold <= 1.0:
        raise UsageError(f"--threshold must be between 0 and 1, not {threshold}")
    return threshold


def check_separate_folders(roots: Sequence[Path]) -> list[Path]:
    """Existing folders, none the same as or inside another (it would be scanned twice and
    its files planned against themselves); resolved, in the order given."""
    for root in roots:
        if not root.is_dir():
            raise UsageError(f"{root} is not a folder")
    resolved = [r.resolve() for r in roots]
    for k, a in enumerate(resolved):
        for b in resolved[k + 1 :]:
            if a == b or a.is_relative_to(b) or b.is_relative_to(a):
                raise UsageError(
                    f"{a} and {b} overlap; give each folder once (a folder inside another "
                    "is scanned with it)"
                )
    return resolved


def check_separate_databases(paths: Sequence[Path]) -> None:
    """Each folder of a run has a database of its own. Two folders on one database file
    (a symlinked or hard-linked ``image_database.db``, the same ``--db-a`` and ``--db-b``)
    would key their
    files by the same relative paths: each run would overwrite the other's rows."""
    seen: dict[object, Path] = {}
    for path in paths:
        names: list[object] = [os.path.realpath(path.expanduser())]
        try:
            found = os.stat(path.expanduser())
            names.append((found.st_dev, found.st_ino))  # a hard link is the same file too
        except OSError:
            pass  # not made yet: its resolved path names it
        for name in names:
            if name in seen:
                raise UsageError(
                    f"{seen[name]} and {path} are one database; each folder needs its own "
                    "(their files would be recorded under the same relative paths)"
                )
        for name in names:
            seen[name] = path


@dataclass
class Proved:
    """The candidates that survived the remembered pairs, and what the proof made of them."""

    candidates: Pairs
    confirmation: Confirmation


def byte_identical(content_hashes: Sequence[str | None]) -> list[list[int]]:
    """Positions that share a content hash, set by set (each of two or more); takes the
    hash column, so a million files build no object each."""
    by_hash: dict[str, list[int]] = defaultdict(list)
    for position, digest in enumerate(content_hashes):
        if digest:
            by_hash[digest].append(position)
    return [members for members in by_hash.values() if len(members) > 1]


def standing_for_sets(
    n: int, exact_sets: Sequence[Sequence[int]], preferred: set[int] | None = None
) -> np.ndarray:
    """The rows the similarity search runs among: every row outside a byte-identical set and
    one row per set, which stands for the others (they have the same bytes, so the same
    vector and the same proofs). ``preferred`` rows stand for their set when one is in it
    (``--new-only``: the new copy, so the set is searched as new)."""
    searched = np.ones(n, dtype=bool)
    for members in exact_sets:
        chosen = next((m for m in members if preferred and m in preferred), members[0])
        for member in members:
            searched[member] = member == chosen
    return np.flatnonzero(searched)


def drop_remembered(
    pairs: Pairs,
    left: Sequence[FileInfo],
    right: Sequence[FileInfo],
    remembered: set[tuple[str, str]],
) -> Pairs:
    """Pairs a reviewer marked "not duplicates" (by content hash) never come back."""
    if not remembered or len(pairs) == 0:
        return pairs
    keep = np.ones(len(pairs), dtype=bool)
    for k, (i, j) in enumerate(zip(pairs.left.tolist(), pairs.right.tolist())):
        a, b = left[i].content_hash, right[j].content_hash
        if a and b and (min(a, b), max(a, b)) in remembered:
            keep[k] = False
    return Pairs(pairs.left[keep], pairs.right[keep], pairs.similarity[keep])


def prove(
    candidates: Pairs,
    left: Sequence[FileInfo],
    right: Sequence[FileInfo],
    stores: Mapping[Path, Store],
    *,
    verify: bool = True,
    geometric: bool = True,
    per_file: int | None = None,
    neighbours: int | None = None,
    progress: Progress | None = None,
    first: Pairs | None = None,
    runner: CheckRunner | None = None,
) -> Proved:
    """Drop remembered pairs, then confirm each candidate from the files (``left[i]``
    against ``right[j]``; the same list for one folder), or trust it (``verify=False``).
    ``stores``: the database of each folder the files lie in (``FileInfo.root``), which
    holds its thumbnails and the pairs its reviewers marked "not duplicates".
    ``neighbours``: the bound the candidates were searched with (``search.nearest``), by
    which the cascade tells a file in a dense region of look-alikes. ``first``: pairs whose
    keypoint check comes before the embedding's (the hash channel's proposals, which the
    embedding rates low by nature). ``runner``: where the checks that read files run
    (``engine_checks``)."""
    remembered: set[tuple[str, str]] = set()
    for store in {id(s): s for s in stores.values()}.values():
        remembered |= store.not_duplicate_pairs()
    candidates = drop_remembered(candidates, left, right, remembered)
    if not verify:
        return Proved(candidates, Confirmation.unverified(candidates))
    involved = [left[i] for i in set(candidates.left.tolist())]
    involved += [right[j] for j in set(candidates.right.tolist())]
    thumbnails = stored_thumbnails(involved, stores)
    give_back_freed_memory()  # the search's kept heap: the proofs allocate in many threads
    confirmation = confirm_pairs(
        candidates,
        left,
        right,
        thumbnails,
        geometric=geometric,
        per_file=GEOMETRY_PER_FILE if per_file is None else per_file,
        neighbours=neighbours,
        progress=progress,
        first=None if first is None else np.isin(pair_keys(candidates), pair_keys(first)),
        runner=runner,
    )
    return Proved(candidates, confirmation)


def engine_checks(engine: str, ray_address: str | None = None) -> CheckRunner | None:
    """Where the proof's file-reading checks run: here (None: the cascade's threads), or
    on a Ray cluster."""
    if engine != "ray":
        return None
    from dedup_cli.distributed.proof import ray_checks

    return ray_checks(ray_address)


def pair_keys(pairs: Pairs) -> np.ndarray:
    """One int64 per pair (left in the high half), for set operations on many pairs."""
    keys: np.ndarray = (pairs.left.astype(np.int64) << 32) | pairs.right.astype(np.int64)
    return keys


ORIENTATION_BATCH = 50_000  # thumbnails read at once for the orientation channel (50 MB)


@dataclass
class HashProposals:
    """What the hash channel proposes that the embedding did not (``orientation_candidates``)."""

    pairs: Pairs  # every new pair, with its embedding similarity
    turned: Pairs  # those proposed only by a turned, mirrored or cropped view: proved first
    inside: list[InsideCandidate]  # files shown inside others (``confirm.inside``)
    stats: dict[str, int]


def orientation_candidates(
    files: Sequence[FileInfo],
    rows: np.ndarray,
    stores: Mapping[Path, Store],
    similarity: Callable[[np.ndarray, np.ndarray], np.ndarray],
    known: Pairs,
    sides: np.ndarray | None = None,
) -> HashProposals:
    """Pairs of ``rows`` the embedding did not propose and the thumbnails' hashes in eight
    orientations and a centre crop do (``search.orientations``: quarter turns, mirror
    images, strong colour changes, crops to 60-75 %), with their embedding similarity; and
    those of them whose upright hashes are not close, proposed only by a turned, mirrored or
    cropped view, where the embedding is blind by nature (pages of one layout share their
    upright hash: they wait their turn by embedding similarity); and the files shown inside
    others, a screenshot's photo (``media.regions``). ``sides``: only pairs across them
    (``cross``). Thumbnails are read a batch at a time."""
    from dedup_cli.search.orientations import (
        MAX_DISTANCE,
        VIEWS,
        orientation_pairs,
        popcount,
        thumbnail_stack,
        view_hashes,
    )

    hashes = np.zeros((len(files), VIEWS), dtype=np.uint64)
    readable = np.zeros(len(files), dtype=bool)
    for start in range(0, len(rows), ORIENTATION_BATCH):
        batch = rows[start : start + ORIENTATION_BATCH]
        stored = stored_thumbnails([files[int(i)] for i in batch], stores)
        stack, good = thumbnail_stack([stored.get(files[int(i)].absolute) for i in batch])
        if len(good):
            hashes[batch[good]] = view_hashes(stack)
            readable[batch[good]] = True
    pairs, stats = orientation_pairs(hashes, rows[readable[rows]], known, sides)
    if len(pairs.left):
        pairs = Pairs(pairs.left, pairs.right, similarity(pairs.left, pairs.right))
    viewed = popcount(hashes[pairs.left, 0] ^ hashes[pairs.right, 0]) > MAX_DISTANCE
    turned = Pairs(pairs.left[viewed], pairs.right[viewed], pairs.similarity[viewed])
    inside = _inside_candidates(files, rows[readable[rows]], stores, hashes, similarity, sides)
    stats["inside"] = len(inside)
    return HashProposals(pairs, turned, inside, stats)


def prove_undecided_inside(
    inside: Sequence[InsideCandidate],
    proved: Proved,
    left: Sequence[FileInfo],
    right: Sequence[FileInfo],
    keeper_of: Mapping[Path, Path],
    progress: Progress | None = None,
) -> None:
    """Prove the files shown inside others (``confirm.inside``) and list those proved as
    related in ``proved``. A file the plan removes (``keeper_of``: removed -> its keeper)
    stands for its keeper, so the listing names files that stay. A pair the proof of copies
    proved, or found related, keeps that verdict; one it rejected (the picture too small in
    the frame) is proved here, and leaves the unconfirmed listing if it is."""
    found = proved.confirmation
    decided = {
        frozenset((str(left[i].absolute), str(right[j].absolute)))
        for i, j in zip(found.pairs.left.tolist(), found.pairs.right.tolist())
    }
    decided |= {frozenset((str(r["a"]), str(r["b"]))) for r in found.related}
    undecided: dict[frozenset[str], InsideCandidate] = {}
    for candidate in inside:
        picture = keeper_of.get(candidate.picture, candidate.picture)
        container = keeper_of.get(candidate.container, candidate.container)
        pair = frozenset((str(picture), str(container)))
        if picture != container and pair not in decided and pair not in undecided:
            undecided[pair] = InsideCandidate(
                picture, container, candidate.box, candidate.similarity
            )
    ordered = sorted(undecided.values(), key=lambda c: (str(c.picture), str(c.container)))
    related = prove_inside(ordered, progress)
    found.related.extend(related)
    found.proofs["inside"] = len(ordered)
    now_related = {frozenset((r["a"], r["b"])) for r in related}
    listed = [u for u in found.unconfirmed if frozenset((u["a"], u["b"])) not in now_related]
    found.unconfirmed_count -= len(found.unconfirmed) - len(listed)
    found.unconfirmed = listed


def _inside_candidates(
    files: Sequence[FileInfo],
    rows: np.ndarray,
    stores: Mapping[Path, Store],
    hashes: np.ndarray,
    similarity: Callable[[np.ndarray, np.ndarray], np.ndarray],
    sides: np.ndarray | None,
) -> list[InsideCandidate]:
    """Files of ``rows`` shown inside other files of ``rows`` (``search.orientations.
    inside_pairs``), closest first for each region. The stored regions are read a batch at
    a time and kept as their hash and box only."""
    from dedup_cli.search.orientations import inside_pairs, upright_hashes

    row_of = {(files[i].root, files[i].path): i for i in rows.tolist()}
    owners: list[int] = []
    boxes: list[Box] = []
    region_hashes: list[np.ndarray] = []
    for root, store in stores.items():
        for batch in store.regions():
            found = [
                (row, region)
                for path, blob in batch
                if (row := row_of.get((root, path))) is not None
                for region in unpack(blob)
            ]
            if not found:
                continue
            owners += [row for row, _ in found]
            boxes += [region.box for _, region in found]
            stack = np.stack(
                [
                    np.frombuffer(r.thumbnail, np.uint8).reshape(THUMBNAIL_SIDE, THUMBNAIL_SIDE)
                    for _, r in found
                ]
            )
            region_hashes.append(upright_hashes(stack))
    if not owners:
        return []
    picture, container, region = inside_pairs(
        hashes, rows, np.concatenate(region_hashes), np.array(owners, dtype=np.int64), sides
    )
    if not len(picture):
        return []
    dots = similarity(picture, container).tolist()
    return [
        InsideCandidate(files[p].absolute, files[c].absolute, boxes[k], dot)
        for p, c, k, dot in zip(picture.tolist(), container.tolist(), region.tolist(), dots)
    ]


def stored_thumbnails(
    files: Iterable[FileInfo], stores: Mapping[Path, Store]
) -> dict[Path, bytes | None]:
    """The stored thumbnails of ``files`` by absolute path, each read from the database of
    its own folder (relative paths repeat across folders; absolute ones do not)."""
    by_root: dict[Path, dict[str, Path]] = defaultdict(dict)
    for file in files:
        if file.root is None:
            raise ValueError(f"{file.absolute}: a file to prove must know its folder")
        by_root[file.root][file.path] = file.absolute
    found: dict[Path, bytes | None] = {}
    for root, paths in by_root.items():
        stored = stores[root].thumbnails(paths)
        found.update({absolute: stored.get(path) for path, absolute in paths.items()})
    return found


def group_proved(
    proved: Proved,
    rank: Callable[[int], Hashable],
    exact_sets: Iterable[Iterable[int]],
    right_offset: int = 0,
    may_lose: Callable[[int], bool] | None = None,
    exact_links: Iterable[tuple[int, int]] = (),
    mates_follow_keeper: bool = True,
) -> list[Group]:
    """Groups without chaining over one index space (``right`` rows shifted by
    ``right_offset`` when the two sides are two lists); ``may_lose`` keeps protected files
    out of the removals."""
    if isinstance(rank, KeeperRank):  # a padded copy is ranked by the picture inside
        rank.padded |= proved.confirmation.padded
    found = proved.confirmation.pairs
    confirmed = Pairs(found.left, found.right + right_offset, found.similarity)
    groups = group_pairs(
        confirmed,
        rank,
        exact_sets,
        methods=proved.confirmation.methods,
        crop_of=proved.confirmation.crop_of,
        exact_links=exact_links,
        mates_follow_keeper=mates_follow_keeper,
    )
    if may_lose is not None:
        for group in groups:
            group.members = [m for m in group.members if may_lose(m)]
        groups = [g for g in groups if g.members]
    return groups


# Rounds of ``tried_against_keepers``; each proves at most one pair per confirmed pair.
KEEPER_ROUNDS = 4


def merged(first: Proved, second: Proved) -> Proved:
    """Two proofs of disjoint candidate pairs as one."""
    a, b = first.confirmation, second.confirmation

    def joined(x: Pairs, y: Pairs) -> Pairs:
        return Pairs(
            np.concatenate([x.left, y.left]),
            np.concatenate([x.right, y.right]),
            np.concatenate([x.similarity, y.similarity]),
        )

    proofs = dict(a.proofs)
    for kind, count in b.proofs.items():
        proofs[kind] = proofs.get(kind, 0) + count
    confirmation = Confirmation(
        pairs=joined(a.pairs, b.pairs),
        methods=[*a.methods, *b.methods],
        crop_of=[*a.crop_of, *b.crop_of],
        unconfirmed=most_similar_entries([*a.unconfirmed, *b.unconfirmed]),
        unconfirmed_count=a.unconfirmed_count + b.unconfirmed_count,
        related=[*a.related, *b.related],
        geometric_checks=a.geometric_checks + b.geometric_checks,
        proofs=proofs,
        padded=a.padded | b.padded,
        unchecked=np.concatenate([a.unchecked, b.unchecked + len(first.candidates)]),
    )
    return Proved(joined(first.candidates, second.candidates), confirmation)


def keeper_gaps(confirmed: Pairs, groups: Sequence[Group]) -> set[tuple[int, int]]:
    """(keeper, file) pairs that decide a group but were never proposed: the file is a proved
    copy of a member of the keeper's group, and not in that group."""
    group_of: dict[int, int] = {}
    for group in groups:
        group_of[group.keeper] = group.keeper
        for member in group.members:
            group_of[member] = group.keeper
    gaps: set[tuple[int, int]] = set()
    for a, b in zip(confirmed.left.tolist(), confirmed.right.tolist()):
        in_a, in_b = group_of.get(a), group_of.get(b)
        if in_a is not None and in_b != in_a:
            gaps.add((min(in_a, b), max(in_a, b)))
        if in_b is not None and in_a != in_b:
            gaps.add((min(in_b, a), max(in_b, a)))
    return gaps


def tried_against_keepers(
    proved: Proved,
    rank: Callable[[int], Hashable],
    exact_sets: Sequence[Sequence[int]],
    similarity: Callable[[np.ndarray, np.ndarray], np.ndarray],
    threshold: float,
    prove_more: Callable[[Pairs], Proved],
    *,
    right_offset: int = 0,
    may_lose: Callable[[int], bool] | None = None,
    exact_links: Sequence[tuple[int, int]] = (),
    mates_follow_keeper: bool = True,
) -> tuple[Proved, list[Group]]:
    """Group, then prove each file against the keeper it would join, where bounded search
    never proposed that pair, and group again.

    A group is a star: a file joins only if it is a proved copy of the keeper itself. With
    each file's candidates bounded (``search.nearest``), a photo with more copies than the
    bound has copies whose pair with the keeper was never proposed, though they are proved
    copies of its other copies; unbounded search would have proposed and proved it. Each
    round proves only those (keeper, file) pairs, at or above the threshold as unbounded
    search requires: at most one per confirmed pair, so the work stays per file.
    ``right_offset``: two collections (``cross``), pairs only between them; ``similarity``
    and ``prove_more`` take pairs in each side's own rows, as ``prove`` does."""

    def grouped(current: Proved) -> list[Group]:
        return group_proved(
            current, rank, exact_sets, right_offset, may_lose, exact_links, mates_follow_keeper
        )

    # Pairs already proved or disproved, as one sorted array of keys (never an object per
    # pair). A proposed pair whose keypoint check was cut by a file's budget is not among
    # them: when it is the pair that decides a group (a 65 % crop whose keeper's budget went
    # on overlays and pan frames), the round below proves it.
    checked = np.ones(len(proved.candidates), dtype=bool)
    checked[proved.confirmation.unchecked] = False
    tried = np.unique((proved.candidates.left[checked] << 32) | proved.candidates.right[checked])
    # Proposed and cut: proved whatever the embedding says (the hash channel proposes pairs
    # the embedding rates under the threshold); one folder's rows in either order.
    cut_left, cut_right = proved.candidates.left[~checked], proved.candidates.right[~checked]
    cut = (cut_left << 32) | cut_right
    if right_offset == 0:
        cut = np.union1d(cut, (cut_right << 32) | cut_left)
    groups = grouped(proved)
    for _ in range(KEEPER_ROUNDS):
        found = proved.confirmation.pairs
        across = Pairs(found.left, found.right + right_offset, found.similarity)
        gaps = set()
        for a, b in keeper_gaps(across, groups):
            if right_offset == 0:
                gaps.add((a, b))
            elif a < right_offset <= b:  # two folders: only pairs between them
                gaps.add((a, b - right_offset))
        if not gaps:
            break
        left = np.array([a for a, _ in sorted(gaps)], dtype=np.int64)
        right = np.array([b for _, b in sorted(gaps)], dtype=np.int64)
        keys = (left << 32) | right
        fresh = ~np.isin(keys, tried)
        if not fresh.any():
            break
        left, right = left[fresh], right[fresh]
        tried = np.union1d(tried, keys[fresh])
        score = similarity(left, right)
        near = (score >= threshold) | np.isin(keys[fresh], cut)
        if not near.any():
            break
        proved = merged(proved, prove_more(Pairs(left[near], right[near], score[near])))
        groups = grouped(proved)
    return proved, groups
