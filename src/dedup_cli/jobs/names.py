"""``filename-clean``: copies found by name, confirmed by content before anything is planned.

A name pair (``name (1).jpg`` beside ``name.jpg``) is confirmed by, in order: the same content
hash; or a proposal (the stored embeddings of both files at the model's threshold, or, when
embeddings are missing, a perceptual-hash match, imagehash pHash) whose thumbnails agree and
whose files, read again, are proven the same picture by ``geometry`` (frame on frame, or
aligned by keypoints; never a crop). Names alone prove nothing: Windows calls successive
screenshots "Screenshot (1).png", "Screenshot (2).png", and those of one app agree at 32 px.
``verify=False`` trusts the names alone, as the original tool did.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from dedup_cli.config import DEFAULT_KEEP
from dedup_cli.confirm.cascade import CROP_AREA, checked
from dedup_cli.confirm.geometry import PictureCache, match, match_aligned
from dedup_cli.confirm.thumbnails import confirm
from dedup_cli.core.files import FileInfo
from dedup_cli.core.keep import KEEP_RULES, Standing, keeper_rank, name_rule
from dedup_cli.core.methods import EXACT, NAME_AND_PHASH, NAME_AND_PIXELS, NAME_ONLY
from dedup_cli.core.plan import Plan, PlannedGroup, Removal
from dedup_cli.core.progress import Progress
from dedup_cli.core.sets import keep_companions
from dedup_cli.jobs.workflow import validate_threshold
from dedup_cli.media.decode import ImageDecodeError, content_hash, decode, read_file
from dedup_cli.media.filenames import NamePair, name_pairs
from dedup_cli.media.provenance import pixel_size
from dedup_cli.media.scan import ScannedFile, scan
from dedup_cli.models import ModelSpec
from dedup_cli.store import Store

# pHash bits (of 64) that may differ between a file and its re-encoded or resized copy.
PHASH_MAX_DISTANCE = 8


@dataclass
class _Evidence:
    """What is known of one file for confirming pairs."""

    info: FileInfo
    thumbnail: bytes | None = None
    phash: Any = None
    vector: np.ndarray | None = None
    unreadable: str | None = None


@dataclass
class NameCleanResult:
    plan: Plan
    name_pairs: int = 0
    confirmed: int = 0
    unconfirmed: list[dict[str, Any]] = field(default_factory=list)
    verified: bool = True

    def as_dict(self) -> dict[str, Any]:
        document = self.plan.as_dict()
        document["stats"] = {
            "name_pairs": self.name_pairs,
            "confirmed_pairs": self.confirmed,
            "unconfirmed_pairs": len(self.unconfirmed),
            "verified": self.verified,
        }
        document["unconfirmed"] = self.unconfirmed
        return document


class _Confirmer:
    """Lazily gathers evidence per file: stored facts, vectors and thumbnails first."""

    def __init__(
        self,
        store: Store,
        threshold: float,
        files: dict[str, ScannedFile],
        involved: set[str],
        model: tuple[int, int] | None,
    ) -> None:
        self.threshold = threshold
        self.files = files
        self.cache: dict[str, _Evidence] = {}
        self.pictures = PictureCache()
        self.rows = store.file_rows(involved)
        self.vectors: dict[str, np.ndarray] = {}
        self.thumbnails: dict[str, bytes | None] = {}
        if model is not None:
            names, matrix = store.load_embeddings(model[0], model[1], involved)
            self.vectors = dict(zip(names, matrix))
            self.thumbnails = store.thumbnails(names)

    def evidence(self, path: str) -> _Evidence:
        if path in self.cache:
            return self.cache[path]
        scanned = self.files[path]
        row = self.rows.get(path)
        if row is not None and (row["size"], row["mtime_ns"]) == (scanned.size, scanned.mtime_ns):
            info = FileInfo(
                path,
                scanned.absolute,
                scanned.size,
                scanned.mtime_ns,
                row["content_hash"],
                row["width"],
                row["height"],
            )
            evidence = _Evidence(info, self.thumbnails.get(path), vector=self.vectors.get(path))
        else:  # not hashed yet, or changed since: the stored facts do not apply
            evidence = _Evidence(
                FileInfo(path, scanned.absolute, scanned.size, scanned.mtime_ns, None, None, None)
            )
        # The stored hash is never trusted to say "same bytes": every name pair is few
        # files, so each is read and hashed in this run.
        if not evidence.unreadable:
            try:
                data, size, mtime = read_file(scanned.absolute)
                old = evidence.info
                fresh = content_hash(data)
                known = fresh == old.content_hash and (size, mtime) == (old.size, old.mtime_ns)
                evidence.info = FileInfo(
                    path,
                    scanned.absolute,
                    size,
                    mtime,
                    fresh,
                    old.width if known else None,
                    old.height if known else None,
                )
                if not known:  # the stored facts were of other bytes
                    evidence.vector = None
                    evidence.thumbnail = None
            except OSError as exc:
                evidence.unreadable = exc.strerror or str(exc)
        self.cache[path] = evidence
        return evidence

    def _decoded(self, evidence: _Evidence) -> None:
        """Fresh pixels for files without stored embeddings: thumbnail and pHash."""
        if evidence.phash is not None or evidence.unreadable:
            return
        import imagehash
        from PIL import Image

        try:
            data, _size, _mtime = read_file(evidence.info.absolute)
            decoded = decode(data, 256)
        except (OSError, ImageDecodeError) as exc:
            evidence.unreadable = str(exc)
            return
        evidence.thumbnail = evidence.thumbnail or decoded.thumbnail
        evidence.phash = imagehash.phash(Image.fromarray(decoded.pixels))
        evidence.info = FileInfo(
            evidence.info.path,
            evidence.info.absolute,
            evidence.info.size,
            evidence.info.mtime_ns,
            evidence.info.content_hash,
            decoded.width,
            decoded.height,
        )

    def check(self, a: str, b: str) -> tuple[str | None, float]:
        """(method, similarity) when the pair is confirmed, (None, similarity) otherwise."""
        ea, eb = self.evidence(a), self.evidence(b)
        if ea.unreadable or eb.unreadable:
            return None, 0.0
        if ea.info.content_hash == eb.info.content_hash:
            return EXACT, 1.0
        if ea.vector is not None and eb.vector is not None:
            similarity = float(ea.vector @ eb.vector)
            ok = similarity >= self.threshold and confirm(ea.thumbnail, eb.thumbnail)
            ok = ok and self._same_picture(ea, eb)
            return (NAME_AND_PIXELS if ok else None), similarity
        self._decoded(ea)
        self._decoded(eb)
        if ea.phash is None or eb.phash is None:
            return None, 0.0
        distance = int(ea.phash - eb.phash)
        similarity = 1.0 - distance / 64.0
        ok = distance <= PHASH_MAX_DISTANCE and confirm(ea.thumbnail, eb.thumbnail)
        ok = ok and self._same_picture(ea, eb)
        return (NAME_AND_PHASH if ok else None), similarity

    def _same_picture(self, a: _Evidence, b: _Evidence) -> bool:
        """The files, read again, show the same whole picture (not a crop of it)."""
        pa, pb = self.pictures.get(a.info.absolute), self.pictures.get(b.info.absolute)
        if pa is None or pb is None:
            return False
        for check in (match_aligned, match):
            found = checked(check, pa, pb)
            if found is not None and found.is_copy and found.area >= CROP_AREA:
                return True
        return False


def _with_size(info: FileInfo) -> FileInfo:
    """``info`` with its pixel size read from the header when it was not stored (a file not
    hashed yet): the keep rules compare pixels."""
    if info.width is not None and info.height is not None:
        return info
    size = pixel_size(info.absolute)
    if size is None:
        return info
    return replace(info, width=size[0], height=size[1])


def _plan_family(
    named: list[str],
    rule: str,
    checker: _Confirmer,
    remembered: set[tuple[str, str]],
    verify: bool,
    result: NameCleanResult,
) -> PlannedGroup | None:
    """The group of one name family (``named[0]`` the base): the keeper is chosen among
    the files proved to be the base's picture, so a stranger that only shares the name
    ("Copy of coffee.jpg" showing a rocket) never keeps; every other file is proved against
    that keeper before it is planned. Unproved pairs are added to ``result.unconfirmed``."""
    root = result.plan.root
    facts = [_with_size(checker.evidence(n).info) for n in named]
    rank = keeper_rank(rule, facts, lambda i: Standing(is_base=i == 0), tuple(KEEP_RULES))
    known: dict[tuple[int, int], tuple[str | None, float]] = {}

    def reviewed_apart(a: int, b: int) -> bool:
        """A reviewer said these two files are not duplicates."""
        ha, hb = facts[a].content_hash, facts[b].content_hash
        return bool(ha and hb and (min(ha, hb), max(ha, hb)) in remembered)

    def proved(a: int, b: int) -> tuple[str | None, float]:
        """How files ``a`` and ``b`` are proved the same picture (None: not proved, or
        reviewed apart)."""
        pair = (min(a, b), max(a, b))
        if pair not in known:
            if reviewed_apart(a, b):
                known[pair] = (None, 0.0)
            elif not verify:
                known[pair] = (NAME_ONLY, 0.0)
            else:
                known[pair] = checker.check(named[pair[0]], named[pair[1]])
        return known[pair]

    same = [0] + [i for i in range(1, len(named)) if proved(0, i)[0] is not None]
    chosen = rank.best(same)
    removals: list[Removal] = []
    for other, path in enumerate(named):
        if other == chosen:
            continue
        method, similarity = proved(chosen, other)
        if method is None:
            if not reviewed_apart(chosen, other):
                result.unconfirmed.append(
                    {
                        "keep": str(root / named[chosen]),
                        "copy": str(root / path),
                        "similarity": round(similarity, 6),
                    }
                )
            continue
        removals.append(Removal(checker.evidence(path).info, similarity, method))
        result.confirmed += 1
    if not removals:
        return None
    why = rank.why(chosen, [i for i in same if i != chosen])
    return PlannedGroup(checker.evidence(named[chosen]).info, tuple(removals), why)


def clean_by_names(
    root: Path,
    store: Store,
    spec: ModelSpec,
    *,
    threshold: float | None = None,
    keep: str = DEFAULT_KEEP,
    verify: bool = True,
    include_hidden: bool = False,
    progress: Progress | None = None,
    exclude: tuple[str, ...] = (),
) -> NameCleanResult:
    """Plan the removal of name-pattern copies, confirmed by content unless ``verify=False``."""
    rule = name_rule(keep)
    threshold = validate_threshold(spec.default_threshold if threshold is None else threshold)
    root = root.resolve()
    files = {
        f.path: f
        for f in scan(root, include_hidden=include_hidden, exclude=[store.path], skip=exclude).files
    }
    pairs = name_pairs(files)
    involved = {p.base for p in pairs} | {p.copy for p in pairs}
    checker = _Confirmer(store, threshold, files, involved, store.model_id(spec.key))
    remembered = store.not_duplicate_pairs()
    by_base: dict[str, list[NamePair]] = defaultdict(list)
    for pair in pairs:
        by_base[pair.base].append(pair)
    result = NameCleanResult(
        plan=Plan(root, spec.key if verify else "names", threshold, f"filename-{keep}"),
        name_pairs=len(pairs),
        verified=verify,
    )
    groups: list[PlannedGroup] = []
    watch = progress or Progress()
    watch.start(len(by_base), "proving: name families")
    for base, members in sorted(by_base.items()):
        copies = [p.copy for p in members]
        named = [base, *copies]
        group = _plan_family(named, rule, checker, remembered, verify, result)
        if group is not None:
            groups.append(group)
        watch.advance(1)
    watch.finish()
    result.plan.groups = groups
    # The same set and follower rules as find: a copy's sidecar goes with it, a set stays.
    keep_companions(result.plan)
    return result
