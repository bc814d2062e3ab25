"""``find``: duplicates within one folder, or within and across several (``find A B``).

``find_duplicates`` is the whole workflow: hash what is missing, find exact copies by content
hash, propose near-duplicates by embedding similarity, confirm each pair (same bytes,
pixels, geometry: see ``confirmation``), group without chaining, and plan what to remove
under a keep strategy. ``find_in_folders`` runs it over several folders as one collection;
each folder keeps its own database (its cache stays valid for a later ``find`` of it alone),
and the run's journal lives in the first one's.
"""

from __future__ import annotations

import functools
import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dedup_cli.config import DEFAULT_KEEP
from dedup_cli.confirm.inside import InsideCandidate
from dedup_cli.confirm.rederive import RederivedHashes, rederive_shared_hashes
from dedup_cli.core.bursts import add_best_of_bursts, bursts, check_bursts, hold_back_other_shots
from dedup_cli.core.keep import FIND_RULES, check_keep, check_prefer, keeper_rank
from dedup_cli.core.pairs import Pairs
from dedup_cli.core.plan import Plan, make_plan
from dedup_cli.core.progress import Progress
from dedup_cli.core.sets import check_pairs, keep_companions
from dedup_cli.embed.collection import (
    Collection,
    FileTable,
    JoinedFiles,
    held_in_half,
    load_collection,
)
from dedup_cli.embed.pipeline import EmbedOptions, HashReport, embed_root
from dedup_cli.errors import UsageError
from dedup_cli.jobs.workflow import (
    ModelMismatchError,
    Proved,
    byte_identical,
    check_separate_databases,
    check_separate_folders,
    engine_checks,
    group_proved,
    orientation_candidates,
    prove,
    prove_undecided_inside,
    standing_for_sets,
    tried_against_keepers,
    validate_threshold,
)
from dedup_cli.media.provenance import capture_moment, sharpness
from dedup_cli.media.scan import scan
from dedup_cli.models import ModelSpec
from dedup_cli.search.candidates import find_candidates, mark_searched, rows_written_since
from dedup_cli.search.exact import row_dots
from dedup_cli.search.nearest import NEIGHBOURS
from dedup_cli.store import Store
from dedup_cli.units import peak_memory_mb


@dataclass
class FindResult:
    """Everything ``find`` learned, for the summary, the JSON document and the action."""

    hashing: HashReport
    plan: Plan
    files_compared: int = 0
    candidate_pairs: int = 0
    confirmed_pairs: int = 0
    confirmed_by: dict[str, int] = field(default_factory=dict)
    geometric_checks: int = 0
    proofs: dict[str, int] = field(default_factory=dict)  # checks run, by kind
    # The most similar pairs no check confirmed (at most UNCONFIRMED_LISTED), and how many.
    unconfirmed: list[dict[str, Any]] = field(default_factory=list)
    unconfirmed_pairs: int = 0
    related: list[dict[str, Any]] = field(default_factory=list)
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # this run's and known
    search_seconds: float = 0.0  # from loading the collection to the plan
    load_seconds: float = 0.0  # loading the collection from the database
    proof_seconds: float = 0.0  # proving the candidates from the files
    index: str = "exact"  # how candidates were searched: exact | ann
    index_file: dict[str, Any] | None = None  # the kept ANN index: built, updated, saved
    new_files: int | None = None  # --new-only: files compared against the whole collection
    # Files whose stored content hash another file shares, read and hashed again this run.
    rederived: RederivedHashes = field(default_factory=RederivedHashes)
    # Files whose content a dedup run removed before and no undo put back (a phone backup
    # uploading deleted copies again): ``{"path", "removed", "run_id", "action", "at"}``.
    came_back: list[dict[str, Any]] = field(default_factory=list)
    # --bursts: runs of shots by one camera seconds apart, sharpest frame marked (None: not
    # asked for).
    bursts: list[dict[str, Any]] | None = None
    # The orientation channel (``search.orientations``): pairs it proposed that the
    # embedding did not, and hash chunks too crowded to use; None when it did not run.
    orientations: dict[str, int] | None = None

    def as_dict(self) -> dict[str, Any]:
        document = self.plan.as_dict()
        document["stats"] = {
            "files_scanned": self.hashing.scanned,
            "files_compared": self.files_compared,
            "files_embedded_now": self.hashing.embedded,
            "unreadable": len(self.unreadable),
            "skipped_symlinks": self.hashing.skipped_symlinks,
            "skipped_excluded": self.hashing.skipped_excluded,
            "candidate_pairs": self.candidate_pairs,
            "confirmed_pairs": self.confirmed_pairs,
            "confirmed_by": self.confirmed_by,
            "geometric_checks": self.geometric_checks,
            "proofs": self.proofs,
            "unconfirmed_pairs": self.unconfirmed_pairs,
            "related_pairs": len(self.related),
            "search_seconds": round(self.search_seconds, 3),
            "load_seconds": round(self.load_seconds, 3),
            "proof_seconds": round(self.proof_seconds, 3),
            "peak_memory_mb": peak_memory_mb(),
            "index": self.index,
            "new_files": self.new_files,
            "hashes_rederived": self.rederived.read,
            "stored_hashes_wrong": self.rederived.differed,
            "came_back": len(self.came_back),
            "orientation_pairs": None
            if self.orientations is None
            else self.orientations["proposed"],
        }
        document["index_file"] = self.index_file
        document["unreadable"] = [{"path": p, "error": e} for p, e in self.unreadable]
        document["scan_errors"] = [{"path": p, "error": e} for p, e in self.hashing.scan_errors]
        document["unconfirmed"] = self.unconfirmed
        document["related"] = self.related
        document["came_back"] = self.came_back
        if self.bursts is not None:
            document["bursts"] = self.bursts
        return document


@dataclass
class Folder:
    """One folder of a ``find`` and the database that caches it."""

    root: Path
    store: Store


def find_duplicates(
    root: Path,
    store: Store,
    spec: ModelSpec,
    options: EmbedOptions,
    *,
    threshold: float | None = None,
    keep: str = DEFAULT_KEEP,
    verify: bool = True,
    geometric: bool = True,
    index: str = "auto",
    new_only: bool = False,
    progress: Progress | None = None,
    neighbours: int | None = NEIGHBOURS,
    prefer: Sequence[str] = (),
    pairs: str = "keep",
    on_bursts: str | None = None,
    orientations: bool = True,
) -> FindResult:
    """Hash what is missing, then plan the removal of confirmed duplicates in one folder
    (``find_in_folders`` says what each setting does)."""
    return find_in_folders(
        [Folder(root, store)],
        spec,
        options,
        threshold=threshold,
        keep=keep,
        verify=verify,
        geometric=geometric,
        index=index,
        new_only=new_only,
        progress=progress,
        neighbours=neighbours,
        prefer=prefer,
        pairs=pairs,
        on_bursts=on_bursts,
        orientations=orientations,
    )


def find_in_folders(
    folders: Sequence[Folder],
    spec: ModelSpec,
    options: EmbedOptions,
    *,
    threshold: float | None = None,
    keep: str = DEFAULT_KEEP,
    verify: bool = True,
    geometric: bool = True,
    index: str = "auto",
    new_only: bool = False,
    progress: Progress | None = None,
    neighbours: int | None = NEIGHBOURS,
    prefer: Sequence[str] = (),
    pairs: str = "keep",
    on_bursts: str | None = None,
    orientations: bool = True,
) -> FindResult:
    """Hash what is missing in each folder, then plan the removal of confirmed duplicates
    among all their files, within a folder and across them (``new_only``: among pairs with
    a file added since each database's last ``find``). ``neighbours``: candidates per file
    (``search.nearest``); None proposes every pair in range and proves each, as dedup 0.1
    did: work that grows with how alike the photos look. ``prefer``: an order of formats
    the ``quality`` keeper consults before the file size. ``pairs``: ``keep`` holds back
    removals that would split a RAW+JPEG or Live Photo set (``core.sets``). A file that is
    another shot than its keeper (one camera, another capture time) is always held back
    (``core.bursts``); ``on_bursts`` ``list`` also lists the folder's bursts, sharpest
    frame marked (reads every file's EXIF), and ``remove-all-but-best`` also plans the
    removal of every frame but the sharpest. ``orientations``: a second proposal channel,
    the thumbnails' hashes in eight orientations (``search.orientations``), proposes quarter
    turns, mirror images and strong colour changes the embedding misses (not with
    ``new_only``)."""
    threshold = validate_threshold(spec.default_threshold if threshold is None else threshold)
    check_keep(keep, FIND_RULES)
    check_prefer(prefer, keep)
    check_pairs(pairs)
    check_bursts(on_bursts)
    if not folders:
        raise UsageError("find needs at least one folder")
    roots = check_separate_folders([f.root for f in folders])
    databases = [f.store.path for f in folders]
    check_separate_databases(databases)
    scanned = [
        scan(root, include_hidden=options.include_hidden, exclude=databases, skip=options.exclude)
        for root in roots
    ]
    reports = [
        embed_root(root, folder.store, spec, options, progress, scanned=found)
        for root, folder, found in zip(roots, folders, scanned)
    ]
    started = time.perf_counter()
    half = held_in_half(sum(len(found.files) for found in scanned), spec.dimension)
    loaded_folders = [
        load_collection(root, folder.store, spec, found, half=half)
        for root, folder, found in zip(roots, folders, scanned)
    ]
    joined = _joined(loaded_folders, roots)
    files, matrix = joined.files, joined.matrix
    loaded = time.perf_counter()
    scope = searched_scope(roots)
    new_rows = None
    if new_only and joined.model_ids:
        new_rows = set(_new_rows(folders, loaded_folders, scope).tolist())
    tables = [c.files for c in loaded_folders]
    # Stored hashes never decide "exact" alone: the files of every exact set are re-read
    # (with --new-only, those of the sets the search touches, once it has).
    rederived = rederive_shared_hashes(tables) if new_rows is None else RederivedHashes()
    exact_sets = byte_identical(files.content_hashes)
    searched_rows = standing_for_sets(len(files), exact_sets, new_rows)
    one = len(folders) == 1
    found_by = find_candidates(
        folders[0].store if one else None,  # the approximate index is kept per database
        joined.model_ids[0] if joined.model_ids else None,
        spec.key,
        loaded_folders[0].files.ids if one else np.zeros(0, np.int64),
        loaded_folders[0].files.seqs if one else np.zeros(0, np.int64),
        matrix,
        threshold,
        index=index,
        device=options.device,  # resolved (torch started) only where the search needs it
        new_rows=None if new_rows is None else np.array(sorted(new_rows), dtype=np.int64),
        searched=None if len(searched_rows) == len(files) else searched_rows,
        neighbours=neighbours,
        engine=options.engine,
        ray_address=options.ray_address,
    )
    orientation_stats: dict[str, int] | None = None
    extra: Pairs | None = None
    inside: list[InsideCandidate] = []
    if orientations and new_rows is None and len(searched_rows) > 1:
        proposals = orientation_candidates(
            files,
            np.asarray(searched_rows, dtype=np.int64),
            {root: folder.store for root, folder in zip(roots, folders)},
            lambda i, j: row_dots(matrix, i, j),
            found_by.pairs,
        )
        extra, inside, orientation_stats = proposals.turned, proposals.inside, proposals.stats
        found_by.pairs = Pairs.union([found_by.pairs, proposals.pairs])
    if new_rows is not None:
        # A set is grouped when it has a new file or the search found a pair with one of its
        # files (its other files were not searched: they stand behind that one).
        touched = new_rows | set(found_by.pairs.left.tolist()) | set(found_by.pairs.right.tolist())
        hashes = {h for i in touched if (h := files.content_hashes[i])}
        rederived = rederive_shared_hashes(tables, hashes)
        exact_sets = [
            members
            for members in byte_identical(files.content_hashes)
            if not touched.isdisjoint(members)
        ]
    searched = time.perf_counter()
    stores = {root: folder.store for root, folder in zip(roots, folders)}
    runner = engine_checks(options.engine, options.ray_address)

    def proved_from_files(pairs: Pairs, first: Pairs | None = None) -> Proved:
        return prove(
            pairs,
            files,
            files,
            stores,
            verify=verify,
            geometric=geometric,
            neighbours=neighbours,
            progress=progress,
            first=first,
            runner=runner,
        )

    proved = proved_from_files(found_by.pairs, first=extra)
    rank = keeper_rank(keep, files, prefer=prefer)
    if neighbours is None:
        groups = group_proved(proved, rank, exact_sets)
    else:
        proved, groups = tried_against_keepers(
            proved,
            rank,
            exact_sets,
            lambda i, j: row_dots(matrix, i, j),
            threshold,
            proved_from_files,
        )
    proof_seconds = time.perf_counter() - searched
    candidates, confirmation = proved.candidates, proved.confirmation
    confirmed = confirmation.pairs
    plan = make_plan(roots[0], spec.key, threshold, keep, files, groups, rank.why)
    plan.roots = roots
    if verify and geometric and inside:  # files shown inside others: related, never removed
        keeper_of = {r.file.absolute: g.keep.absolute for g in plan.groups for r in g.remove}
        prove_undecided_inside(inside, proved, files, files, keeper_of, progress)
    plan.related = confirmation.related
    moment_of = functools.lru_cache(maxsize=None)(capture_moment)
    hold_back_other_shots(plan, moment_of)
    listed = None
    if on_bursts is not None:
        listed, frames_of = listed_bursts(files, moment_of)
        if on_bursts == "remove-all-but-best":
            # Only frames that look like the sharpest one (the search's threshold): a
            # time-lapse, or two phones of one model a second apart, are not a burst to thin.
            alike = []
            for best, others in frames_of:
                rows = np.asarray(others, dtype=np.int64)
                dots = row_dots(matrix, np.full(len(rows), best), rows)
                kept = [files[k] for k, dot in zip(others, dots.tolist()) if dot >= threshold]
                if kept:
                    alike.append((files[best], kept))
            left = add_best_of_bursts(plan, alike)
            for burst in listed:
                if burst["sharpest"] in left:
                    burst["left"] = left[burst["sharpest"]]
    if pairs == "keep":
        keep_companions(plan, moment_of=moment_of)
    for folder, collection in zip(folders, loaded_folders):
        if collection.model_id is not None:
            mark_searched(folder.store, collection.model_id, collection.files.seqs, scope)
    return FindResult(
        hashing=HashReport.merged(reports),
        plan=plan,
        files_compared=len(files),
        candidate_pairs=len(candidates),
        confirmed_pairs=len(confirmed),
        confirmed_by=confirmation.counts(),
        geometric_checks=confirmation.geometric_checks,
        proofs=confirmation.proofs,
        unconfirmed=confirmation.unconfirmed,
        unconfirmed_pairs=confirmation.unconfirmed_count,
        related=confirmation.related,
        unreadable=joined.unreadable,
        search_seconds=time.perf_counter() - started,
        load_seconds=loaded - started,
        proof_seconds=proof_seconds,
        index=found_by.method,
        index_file=found_by.index,
        new_files=None if new_rows is None else len(new_rows),
        rederived=rederived,
        came_back=came_back(files, [folder.store for folder in folders]),
        bursts=listed,
        orientations=orientation_stats,
    )


def listed_bursts(
    files: FileTable | JoinedFiles, moment_of: Callable[[Path], tuple[str, float] | None]
) -> tuple[list[dict[str, Any]], list[tuple[int, list[int]]]]:
    """The bursts among ``files`` (``core.bursts``), each frame with its capture time and
    sharpness, the sharpest named; and each burst's sharpest frame with the others, as
    rows (a burst none of whose frames could be read for sharpness has none)."""
    moments = []
    for k in range(len(files)):
        moment = moment_of(Path(files[k].absolute))
        if moment is not None:
            moments.append((k, moment[0], moment[1]))
    listed, frames_of = [], []
    for run in bursts(moments):
        frames: list[dict[str, Any]] = []
        for k in run:
            camera, seconds = moment_of(Path(files[k].absolute)) or ("", 0.0)
            score = sharpness(files[k].absolute)
            frames.append(
                {
                    "path": str(files[k].absolute),
                    "taken": seconds,
                    "sharpness": None if score is None else round(score, 2),
                }
            )
        best = max(range(len(run)), key=lambda i: frames[i]["sharpness"] or -1.0)
        listed.append({"camera": camera, "frames": frames, "sharpest": frames[best]["path"]})
        if frames[best]["sharpness"] is not None:
            frames_of.append((run[best], [k for i, k in enumerate(run) if i != best]))
    return listed, frames_of


def came_back(files: FileTable | JoinedFiles, stores: Sequence[Store]) -> list[dict[str, Any]]:
    """The files whose content a run journaled in ``stores`` removed, and no undo put back
    (the tombstones are the journal's done actions). Reported only: such a file is planned
    like any other, as a proved copy of a keeper that is still there; one with no copy
    left is the last copy, and stays."""
    removed: dict[str, dict[str, Any]] = {}
    for store in {id(s): s for s in stores}.values():
        removed.update(store.removed_contents())
    if not removed:
        return []
    back = []
    for k, digest in enumerate(files.content_hashes):
        if digest and digest in removed:
            earlier = removed[digest]
            if str(files[k].absolute) in earlier["keepers"]:
                continue  # the file a byte copy was removed for: it never left
            back.append(
                {
                    "path": str(files[k].absolute),
                    "removed": earlier["path"],
                    "run_id": earlier["run_id"],
                    "action": earlier["action"],
                    "at": earlier["at"],
                }
            )
    return back


@dataclass
class _Joined:
    """The loaded folders of a ``find`` as one collection."""

    files: FileTable | JoinedFiles
    matrix: np.ndarray
    unreadable: list[tuple[str, str]]
    model_ids: list[int]  # of the databases that hold the model (each numbers its own)


def _joined(collections: Sequence[Collection], roots: Sequence[Path]) -> _Joined:
    """One folder as it is; several as one row space, their matrices stacked, unreadable
    files named by absolute path (their relative paths may repeat across folders)."""
    model_ids = [c.model_id for c in collections if c.model_id is not None]
    if len(collections) == 1:
        only = collections[0]
        return _Joined(only.files, only.matrix, only.unreadable, model_ids)
    widths = {c.matrix.shape[1] for c in collections if len(c.files)}
    if len(widths) > 1:
        raise ModelMismatchError(
            "the folders' databases hold embeddings of different dimensions "
            f"({', '.join(map(str, sorted(widths)))}: different weights); re-run dedup hash "
            "with the same --weights on each"
        )
    dtype = np.result_type(*(c.matrix.dtype for c in collections))
    width = widths.pop() if widths else collections[0].matrix.shape[1]
    matrix = np.concatenate(
        [c.matrix.astype(dtype, copy=False).reshape(-1, width) for c in collections]
    )
    unreadable = [
        (str(root / path), error)
        for root, c in zip(roots, collections)
        for path, error in c.unreadable
    ]
    return _Joined(JoinedFiles([c.files for c in collections]), matrix, unreadable, model_ids)


def searched_scope(roots: Sequence[Path]) -> str | None:
    """What a ``--new-only`` mark covers: the folder alone (None), or this set of folders
    searched together, whatever their order."""
    if len(roots) == 1:
        return None
    together = "\n".join(sorted(str(r) for r in roots))
    return "with-" + hashlib.sha256(together.encode("utf-8", "surrogateescape")).hexdigest()[:16]


def _new_rows(
    folders: Sequence[Folder], collections: Sequence[Collection], scope: str | None
) -> np.ndarray:
    """The rows (of the joined collection) written since each database's last ``find`` of
    these folders together."""
    parts, offset = [], 0
    for folder, collection in zip(folders, collections):
        if collection.model_id is not None:
            written = rows_written_since(
                folder.store, collection.model_id, collection.files.seqs, scope
            )
            parts.append(written + offset)
        offset += len(collection.files)
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)
