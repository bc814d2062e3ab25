"""``cross``: duplicates only *between* two collections, each with its own database.

Pairs are searched only across the two folders (never within one), confirmed like ``find``
(same bytes, pixels, geometry), and grouped without chaining. ``keep="db1"`` protects folder A entirely
(only B loses files), ``"db2"`` the reverse, ``"largest"`` keeps the largest file of each group
wherever it is. Database rows are untrusted (a database can come from elsewhere): only files
found by scanning each folder are ever compared, planned or acted on, and the action re-checks
that every file lies inside its own folder.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dedup_cli.config import DEFAULT_KEEP
from dedup_cli.confirm.inside import InsideCandidate
from dedup_cli.confirm.rederive import rederive_shared_hashes
from dedup_cli.core.bursts import hold_back_other_shots
from dedup_cli.core.keep import CROSS_RULES, Standing, check_keep, check_prefer, keeper_rank
from dedup_cli.core.pairs import Pairs
from dedup_cli.core.plan import Plan, make_plan
from dedup_cli.core.progress import Progress
from dedup_cli.core.sets import check_pairs, keep_companions
from dedup_cli.embed.collection import FileTable, empty_stored, load_collection
from dedup_cli.embed.pipeline import HashReport, embed_root, needs_work
from dedup_cli.errors import DedupError
from dedup_cli.jobs.workflow import (
    ModelMismatchError,
    Proved,
    byte_identical,
    check_separate_databases,
    check_separate_folders,
    engine_checks,
    orientation_candidates,
    prove,
    prove_undecided_inside,
    tried_against_keepers,
    validate_threshold,
)
from dedup_cli.media.provenance import capture_moment
from dedup_cli.media.scan import ScanResult, scan
from dedup_cli.models import ModelSpec, resolve_device
from dedup_cli.search.candidates import choose_index
from dedup_cli.search.exact import row_dots
from dedup_cli.search.nearest import NEIGHBOURS, SMALL_SEARCH, nearest_cross_pairs_small
from dedup_cli.store import Store


class IncompleteDatabaseError(DedupError):
    """``--no-hash`` was given but a database lacks embeddings of some files."""


@dataclass
class _Side:
    root: Path
    store: Store
    found: ScanResult
    files: FileTable = field(default_factory=lambda: FileTable(Path(), empty_stored(0)))
    matrix: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    hashing: HashReport | None = None


@dataclass
class CrossResult:
    plan: Plan
    only_a: int
    only_b: int
    in_both_a: int
    in_both_b: int
    candidate_pairs: int
    confirmed_pairs: int
    unconfirmed: list[dict[str, Any]]  # the most similar, at most UNCONFIRMED_LISTED
    unconfirmed_pairs: int
    hashing: list[HashReport]
    related: list[dict[str, Any]] = field(default_factory=list)
    index: str = "exact"  # how candidates were searched: exact | ann
    # The hash channel (``search.orientations``): pairs across it proposed that the
    # embedding did not; None when it did not run.
    orientation_pairs: int | None = None

    def as_dict(self) -> dict[str, Any]:
        document = self.plan.as_dict()
        document["summary"].update(
            {
                "only_in_a": self.only_a,
                "only_in_b": self.only_b,
                "in_both_a": self.in_both_a,
                "in_both_b": self.in_both_b,
            }
        )
        document["stats"] = {
            "candidate_pairs": self.candidate_pairs,
            "index": self.index,
            "confirmed_pairs": self.confirmed_pairs,
            "unconfirmed_pairs": self.unconfirmed_pairs,
            "related_pairs": len(self.related),
            "embedded_now": sum(h.embedded for h in self.hashing),
            "orientation_pairs": self.orientation_pairs,
        }
        document["unconfirmed"] = self.unconfirmed
        document["related"] = self.related
        return document


def _prepare(
    side: _Side,
    spec: ModelSpec,
    options: Any,
    hash_missing: bool,
    label: str,
    progress: Progress | None,
) -> None:
    if hash_missing:
        side.hashing = embed_root(side.root, side.store, spec, options, progress, side.found)
    else:
        known = side.store.model_id(spec.key)
        if known is None:
            stored = ", ".join(side.store.model_names()) or "none"
            raise ModelMismatchError(
                f"the database of {label} ({side.store.path}) has no {spec.key} embeddings "
                f"(it has: {stored}); run: dedup hash {side.root} --model {spec.key}"
            )
        states = side.store.file_states(known[0])
        missing = sum(1 for f in side.found.files if needs_work(f, states.get(f.path)))
        if missing:
            raise IncompleteDatabaseError(
                f"the database of {label} is incomplete: {missing} file(s) not hashed with "
                f"{spec.key}; run: dedup hash {side.root} --model {spec.key} (or drop --no-hash)"
            )
    side.files, side.matrix, *_ = load_collection(side.root, side.store, spec, side.found)


def _exact_across(
    hashes: Sequence[str | None], offset: int
) -> tuple[list[list[int]], list[tuple[int, int]]]:
    """Byte-identical files always pair across the folders, model or not, and never within
    one. Each folder's identical files are one node (``core.group``; a keeper's mates stay,
    as they are in its own folder), and one link joins the A node and the B node of every
    content found in both: |A| + |B| entries, not |A| x |B| links, whichever file is kept."""
    sets: list[list[int]] = []
    links: list[tuple[int, int]] = []
    for members in byte_identical(hashes):
        in_a = [i for i in members if i < offset]
        in_b = [j for j in members if j >= offset]
        sets += [side for side in (in_a, in_b) if len(side) > 1]
        if in_a and in_b:
            links.append((in_a[0], in_b[0]))
    return sets, links


def _cross_candidates(
    left: np.ndarray, right: np.ndarray, threshold: float, index: str, device: Any
) -> tuple[Pairs, str]:
    """Each side's ``NEIGHBOURS`` nearest on the other, and how they were searched. Two
    small folders on the CPU are searched without torch (``nearest_cross_pairs_small``);
    otherwise the device is resolved (torch starts) and the search runs on it, or on cells
    above the same cut-over as ``find``: as many products as all-pairs search over
    sqrt(2 |A| |B|) files."""
    size = int(math.sqrt(2 * len(left) * len(right)))
    method = choose_index(index, size, device)
    if method == "ann":
        from dedup_cli.search.cells import ann_cross_pairs

        return ann_cross_pairs(left, right, threshold, neighbours=NEIGHBOURS), method
    if max(len(left), len(right)) <= SMALL_SEARCH and device in (None, "auto", "cpu"):
        return nearest_cross_pairs_small(left, right, threshold, NEIGHBOURS), method
    from dedup_cli.search.exact import nearest_cross_pairs

    found = nearest_cross_pairs(
        left, right, threshold, NEIGHBOURS, device=resolve_device(device or "cpu")
    )
    return found, method


def cross_find(
    root_a: Path,
    store_a: Store,
    root_b: Path,
    store_b: Store,
    spec: ModelSpec,
    options: Any,
    *,
    threshold: float | None = None,
    keep: str = DEFAULT_KEEP,
    hash_missing: bool = True,
    verify: bool = True,
    geometric: bool = True,
    index: str = "auto",
    progress: Progress | None = None,
    prefer: Sequence[str] = (),
    pairs: str = "keep",
    orientations: bool = True,
) -> CrossResult:
    """Plan the removal of confirmed duplicates between two folders (``prefer``,
    ``pairs`` and ``orientations`` as for ``find``)."""
    check_keep(keep, CROSS_RULES)
    check_prefer(prefer, keep)
    check_pairs(pairs)
    threshold = validate_threshold(spec.default_threshold if threshold is None else threshold)
    a_root, b_root = check_separate_folders([root_a, root_b])
    check_separate_databases([store_a.path, store_b.path])
    sides = []
    for root, store, label in ((a_root, store_a, "A"), (b_root, store_b, "B")):
        side = _Side(
            root,
            store,
            scan(
                root,
                include_hidden=options.include_hidden,
                exclude=[store_a.path, store_b.path],
                skip=options.exclude,
            ),
        )
        _prepare(side, spec, options, hash_missing, label, progress)
        sides.append(side)
    a, b = sides
    if a.matrix.shape[1] != b.matrix.shape[1] and len(a.files) and len(b.files):
        raise ModelMismatchError(
            f"{spec.key} embeddings have dimension {a.matrix.shape[1]} in A but "
            f"{b.matrix.shape[1]} in B (different weights); re-run dedup hash with the same "
            f"--weights on both"
        )
    rederive_shared_hashes([a.files, b.files])  # stored hashes never decide "exact" alone
    candidates, method = _cross_candidates(a.matrix, b.matrix, threshold, index, options.device)
    offset = len(a.files)
    files = [*a.files, *b.files]
    stores = {a.root: a.store, b.root: b.store}
    turned: Pairs | None = None
    inside: list[InsideCandidate] = []
    proposed_by_hashes: int | None = None
    if orientations and len(a.files) and len(b.files):
        # One index space, A's rows then B's; pairs across only, back in each side's rows.
        labels = np.repeat(np.array([0, 1]), [offset, len(b.files)])
        across = Pairs(candidates.left, candidates.right + offset, candidates.similarity)
        proposals = orientation_candidates(
            files,
            np.arange(len(files), dtype=np.int64),
            stores,
            lambda i, j: row_dots(a.matrix, i, j - offset, b.matrix),
            across,
            labels,
        )
        proposed_by_hashes = proposals.stats["proposed"]
        found, turned = proposals.pairs, proposals.turned
        found = Pairs(found.left, found.right - offset, found.similarity)
        turned = Pairs(turned.left, turned.right - offset, turned.similarity)
        inside = proposals.inside
        candidates = Pairs.union([candidates, found])
    runner = engine_checks(options.engine, options.ray_address)

    def proved_from_files(pairs: Pairs, first: Pairs | None = None) -> Proved:
        return prove(
            pairs,
            a.files,
            b.files,
            stores,
            verify=verify,
            geometric=geometric,
            neighbours=NEIGHBOURS,
            progress=progress,
            first=first,
            runner=runner,
        )

    protected = {"db1": 0, "db2": 1}.get(keep)  # the folder that loses nothing

    def side_of(i: int) -> int:
        return 0 if i < offset else 1

    rank = keeper_rank(keep, files, lambda i: Standing(side=side_of(i)), CROSS_RULES, prefer)
    same_bytes, exact_links = _exact_across(
        [*a.files.content_hashes, *b.files.content_hashes], offset
    )
    proved, groups = tried_against_keepers(
        proved_from_files(candidates, first=turned),
        rank,
        same_bytes,
        lambda i, j: row_dots(a.matrix, i, j, b.matrix),
        threshold,
        proved_from_files,
        right_offset=offset,
        may_lose=None if protected is None else (lambda m: side_of(m) != protected),
        exact_links=exact_links,
        mates_follow_keeper=False,
    )
    candidates, confirmation = proved.candidates, proved.confirmation
    found = confirmation.pairs
    confirmed = Pairs(found.left, found.right + offset, found.similarity)
    plan = make_plan(a_root, spec.key, threshold, f"cross-{keep}", files, groups, rank.why)
    plan.roots = [a_root, b_root]
    if verify and geometric and inside:  # files shown inside others: related, never removed
        keeper_of = {r.file.absolute: g.keep.absolute for g in plan.groups for r in g.remove}
        prove_undecided_inside(inside, proved, a.files, b.files, keeper_of, progress)
    plan.related = confirmation.related
    moment_of = functools.lru_cache(maxsize=None)(capture_moment)
    if pairs == "keep":
        keep_companions(plan, moment_of=moment_of)
    hold_back_other_shots(plan, moment_of)
    matched = set(confirmed.left.tolist()) | set(confirmed.right.tolist())
    for members in byte_identical([*a.files.content_hashes, *b.files.content_hashes]):
        if members[0] < offset <= members[-1]:  # in both folders
            matched |= set(members)
    in_a = sum(1 for i in matched if i < offset)
    in_b = sum(1 for i in matched if i >= offset)
    return CrossResult(
        plan=plan,
        only_a=len(a.files) - in_a,
        only_b=len(b.files) - in_b,
        in_both_a=in_a,
        in_both_b=in_b,
        candidate_pairs=len(candidates),
        confirmed_pairs=len(confirmed),
        unconfirmed=confirmation.unconfirmed,
        unconfirmed_pairs=confirmation.unconfirmed_count,
        related=confirmation.related,
        hashing=[h for h in (a.hashing, b.hashing) if h is not None],
        index=method,
        orientation_pairs=proposed_by_hashes,
    )
