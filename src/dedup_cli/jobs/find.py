"""The jobs the CLI runs, as plain functions over the library: hash a folder, find duplicates.

``find_duplicates`` is the whole workflow: hash what is missing, find exact copies by content
hash, propose near-duplicates by embedding similarity, confirm each pair (same bytes,
pixels, geometry: see ``confirmation``), group without chaining, and plan what to remove
under a keep strategy.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dedup_cli.config import DEFAULT_KEEP
from dedup_cli.confirm.rederive import RederivedHashes, rederive_shared_hashes
from dedup_cli.core.keep import FIND_RULES, check_keep, keeper_rank
from dedup_cli.core.pairs import Pairs
from dedup_cli.core.plan import Plan, make_plan
from dedup_cli.core.progress import Progress
from dedup_cli.embed.collection import load_collection
from dedup_cli.embed.pipeline import EmbedOptions, HashReport, embed_root
from dedup_cli.jobs.workflow import (
    Proved,
    byte_identical,
    group_proved,
    prove,
    standing_for_sets,
    tried_against_keepers,
    validate_threshold,
)
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
        }
        document["index_file"] = self.index_file
        document["unreadable"] = [{"path": p, "error": e} for p, e in self.unreadable]
        document["scan_errors"] = [{"path": p, "error": e} for p, e in self.hashing.scan_errors]
        document["unconfirmed"] = self.unconfirmed
        document["related"] = self.related
        return document


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
) -> FindResult:
    """Hash what is missing, then plan the removal of confirmed duplicates (``new_only``:
    among pairs with a file added since the last ``find``). ``neighbours``: candidates per
    file (``search.nearest``); None proposes every pair in range and proves each, as dedup
    0.1 did: work that grows with how alike the photos look."""
    threshold = validate_threshold(spec.default_threshold if threshold is None else threshold)
    check_keep(keep, FIND_RULES)
    root = root.resolve()
    found = scan(
        root, include_hidden=options.include_hidden, exclude=[store.path], skip=options.exclude
    )
    report = embed_root(root, store, spec, options, progress, scanned=found)
    started = time.perf_counter()
    files, matrix, unreadable, model_id = load_collection(root, store, spec, found)
    loaded = time.perf_counter()
    new_rows = None
    if new_only and model_id is not None:
        new_rows = set(rows_written_since(store, model_id, files.seqs).tolist())
    # Stored hashes never decide "exact" alone: the files of every exact set are re-read
    # (with --new-only, those of the sets the search touches, once it has).
    rederived = rederive_shared_hashes([files]) if new_rows is None else RederivedHashes()
    exact_sets = byte_identical(files.content_hashes)
    searched_rows = standing_for_sets(len(files), exact_sets, new_rows)
    found_by = find_candidates(
        store,
        model_id,
        spec.key,
        files.ids,
        files.seqs,
        matrix,
        threshold,
        index=index,
        device=options.device,  # resolved (torch started) only where the search needs it
        new_only=new_only,
        searched=None if len(searched_rows) == len(files) else searched_rows,
        neighbours=neighbours,
    )
    if new_rows is not None:
        # A set is grouped when it has a new file or the search found a pair with one of its
        # files (its other files were not searched: they stand behind that one).
        touched = new_rows | set(found_by.pairs.left.tolist()) | set(found_by.pairs.right.tolist())
        hashes = {h for i in touched if (h := files.content_hashes[i])}
        rederived = rederive_shared_hashes([files], hashes)
        exact_sets = [
            members
            for members in byte_identical(files.content_hashes)
            if not touched.isdisjoint(members)
        ]
    searched = time.perf_counter()

    def proved_from_files(pairs: Pairs) -> Proved:
        return prove(
            pairs,
            files,
            files,
            (store, store),
            verify=verify,
            geometric=geometric,
            neighbours=neighbours,
            progress=progress,
        )

    proved = proved_from_files(found_by.pairs)
    rank = keeper_rank(keep, files)
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
    plan = make_plan(root, spec.key, threshold, keep, files, groups, rank.why)
    plan.related = confirmation.related
    if model_id is not None:
        mark_searched(store, model_id, files.seqs)
    return FindResult(
        hashing=report,
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
        unreadable=unreadable,
        search_seconds=time.perf_counter() - started,
        load_seconds=loaded - started,
        proof_seconds=proof_seconds,
        index=found_by.method,
        index_file=found_by.index,
        new_files=None if new_rows is None else len(new_rows),
        rederived=rederived,
    )
