"""Policy on a proved plan: files that belong together are kept or removed together.

A RAW and the JPEG of the same shot, a Live Photo's still and its movie (``media.companions``
finds them) are one *set*. The policy runs on the plan after the proof and only ever takes
removals out of it, never adds one:

- a file is never removed in favour of a member of its own set (the JPEG is not a copy to
  drop because its RAW is kept);
- a file whose set companions are not all planned for removal stays, so no set is split
  (a Live Photo's still does not go while its movie stays).

Files that exist only for a picture's sake (its XMP sidecar, a Live Photo's movie:
``media.companions`` calls them followers) go with it (``followers_of``):

- a sidecar goes with its picture (moved, trashed; deleted only when the keeper has an
  identical one, checked when acting);
- a Live Photo's movie goes only when the keeper has a movie of the same size beside it
  (compared byte for byte when acting); otherwise the still stays, so no motion is lost;
- a sidecar or movie shared by several pictures of one stem goes only with the last of them.

Dropping one removal can leave another set incomplete, so the rules run until nothing
changes. What they held back is listed with the reason (``Plan.held_back``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dedup_cli.config import PAIRS
from dedup_cli.core.plan import Plan, acting_order
from dedup_cli.errors import UsageError
from dedup_cli.media.companions import MOVIE, STILLS, Companions, kind_of


@dataclass(frozen=True)
class Follower:
    """A file that goes with a removed picture, in the picture's folder; ``counterpart``
    is the keeper's file of the same kind (a name in the keeper's folder), if it has one."""

    name: str
    what: str  # ``companions.SIDECAR`` or ``companions.MOVIE``
    counterpart: str | None = None
    others: tuple[str, ...] = ()  # the other files it belongs to: they must be gone first


def check_pairs(pairs: str) -> str:
    if pairs not in PAIRS:
        raise UsageError(f"--pairs must be one of {', '.join(PAIRS)}, not {pairs!r}")
    return pairs


def keep_sets_whole(plan: Plan, companions_of: Callable[[Path], list[Path]]) -> Plan:
    """``plan`` without the removals that would split a set; each one held back is added to
    ``plan.held_back`` with its reason. Returns the same plan, changed in place."""
    plan.hold_back(_splitting(plan, companions_of))
    return plan


def keep_companions(
    plan: Plan,
    companions: Companions | None = None,
    moment_of: Callable[[Path], tuple[str, float] | None] | None = None,
) -> Plan:
    """The set and follower rules together, until nothing changes; ``plan.followers`` then
    names what goes with each removal. ``moment_of`` (camera and capture time) also makes a
    set of a RAW and a JPEG or HEIC of one shot wherever they lie (``one_shot``). Returns
    the same plan, changed in place."""
    companions = companions or Companions()
    if moment_of is not None:
        plan.hold_back(one_shot(plan, moment_of))
    while True:
        held = _splitting(plan, companions.of)
        going, without_movie = followers_of(plan, companions)
        held.update(without_movie)
        if not held:
            plan.followers = {path: list(found) for path, found in going.items() if found}
            plan.with_followers = True
            return plan
        plan.hold_back(held)


def one_shot(plan: Plan, moment_of: Callable[[Path], tuple[str, float] | None]) -> dict[Path, str]:
    """Removals that are another kind of still of their keeper's shot: the camera and the
    capture time (to the sub-second) are the keeper's, and one is a RAW, JPEG or HEIC where
    the other is another of these (a RAW and its JPEG under other names or folders, an
    export that kept its EXIF). EXIF is read only for such mixed pairs."""
    held: dict[Path, str] = {}
    for group in plan.groups:
        keeper = Path(group.keep.absolute)
        theirs = kind_of(keeper.name)
        if theirs not in STILLS:
            continue
        mixed = [
            Path(r.file.absolute)
            for r in group.remove
            if kind_of(Path(r.file.absolute).name) in STILLS - {theirs}
        ]
        shot = moment_of(keeper) if mixed else None  # the keeper's EXIF, read once a group
        for path in mixed:
            mine = kind_of(path.name)
            if shot is not None and moment_of(path) == shot:
                held[path] = (
                    f"one shot with its keeper {keeper.name} ({shot[0]}, the same capture "
                    f"time): a {mine} and its {theirs} are not copies"
                )
    return held


def followers_of(
    plan: Plan, companions: Companions
) -> tuple[dict[str, list[Follower]], dict[Path, str]]:
    """What goes with each planned removal (by its absolute path), and the removals that
    must stay because a follower cannot go (a movie the keeper has no copy of). A follower
    shared by several removals goes with the last of them in the order they are carried
    out (``acting_order``), and only once all of them are gone (``Follower.others``)."""
    removing = {Path(r.file.absolute) for g in plan.groups for r in g.remove}
    order = [(group, removal) for group in plan.groups for removal in acting_order(group)]
    last: dict[tuple[Path, str], int] = {}
    owned: dict[tuple[Path, str], list[Path]] = {}
    for index, (_, removal) in enumerate(order):
        for follower, what in companions.followers(Path(removal.file.absolute)):
            owners = companions.owners(follower, what)
            if all(o in removing for o in owners):  # else it stays with a file that stays
                last[(follower, what)] = index
                owned[(follower, what)] = owners
    going: dict[str, list[Follower]] = {str(Path(r.file.absolute)): [] for _, r in order}
    held: dict[Path, str] = {}
    for (follower, what), index in sorted(last.items(), key=lambda item: item[1]):
        group, removal = order[index]
        path, keeper = Path(removal.file.absolute), Path(group.keep.absolute)
        counterpart = _counterpart(follower, what, companions.followers(keeper))
        if counterpart is not None and keeper.parent / counterpart == follower:
            counterpart = None  # never a file standing for itself
        if what == MOVIE and counterpart is None:
            held[path] = (
                f"a Live Photo: its movie {follower.name} has no movie of the same size "
                f"beside its keeper {keeper.name}"
            )
            continue
        others = tuple(str(o) for o in owned[(follower, what)] if o != path)
        going[str(path)].append(Follower(follower.name, what, counterpart, others))
    return going, held


def _counterpart(follower: Path, what: str, keepers: list[tuple[Path, str]]) -> str | None:
    """The keeper's file that stands for ``follower``: same kind and extension (a movie
    also the same size)."""
    extension = os.path.splitext(follower.name)[1].casefold()
    for candidate, kind in keepers:
        if kind != what or os.path.splitext(candidate.name)[1].casefold() != extension:
            continue
        if what == MOVIE and _size(candidate) != _size(follower):
            continue
        return candidate.name
    return None


def _size(path: Path) -> int | None:
    try:
        return path.lstat().st_size
    except OSError:
        return None


def _splitting(plan: Plan, companions_of: Callable[[Path], list[Path]]) -> dict[Path, str]:
    """The removals that would split a set, with the reason for each."""
    removing = {Path(r.file.absolute) for g in plan.groups for r in g.remove}
    held: dict[Path, str] = {}
    changed = True
    while changed:
        changed = False
        for group in plan.groups:
            keeper = Path(group.keep.absolute)
            for removal in group.remove:
                path = Path(removal.file.absolute)
                if path in held:
                    continue
                others = companions_of(path)
                if not others:
                    continue
                if keeper in others:
                    reason = f"in one set with its keeper {keeper.name}"
                else:
                    staying = [o for o in others if o not in removing or o in held]
                    if not staying:
                        continue
                    reason = "kept with its set: " + ", ".join(o.name for o in staying)
                held[path] = reason
                changed = True
    return held
