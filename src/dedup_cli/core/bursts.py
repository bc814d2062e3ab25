"""Bursts are not duplicates: several real shots a second apart look alike, and are not
copies of each other.

A copy keeps its original's capture time (EXIF DateTimeOriginal, SubSecTimeOriginal) or
loses it; it never gets another one. So two files of one camera whose capture times differ
are two shots, whatever their pixels say. As a policy on the proved plan this only takes
removals back (``hold_back_other_shots``), like ``core.sets``. ``find --bursts`` also lists
the bursts of the folder: runs of shots by one camera at most ``BURST_GAP`` seconds apart,
with the sharpest frame marked; nothing in a burst is planned for removal by it.
``--bursts remove-all-but-best`` is the one way a burst's frames are removed, when the user
asks: every frame but the sharpest (``add_best_of_bursts``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

from dedup_cli.config import BURSTS
from dedup_cli.core.files import FileInfo
from dedup_cli.core.methods import BURST, EXACT
from dedup_cli.core.plan import Plan, PlannedGroup, Removal
from dedup_cli.errors import UsageError

BURST_GAP = 2.0  # seconds between two frames of one burst


def check_bursts(choice: str | None) -> str | None:
    """None (bursts not looked at) or one of ``config.BURSTS``."""
    if choice is not None and choice not in BURSTS:
        raise UsageError(f"--bursts must be one of {', '.join(BURSTS)}, not {choice!r}")
    return choice


def hold_back_other_shots(
    plan: Plan, moment_of: Callable[[Path], tuple[str, float] | None]
) -> Plan:
    """``plan`` without removals of a file that is another shot than its keeper (the same
    camera, another capture time); each is added to ``plan.held_back``."""
    held: dict[Path, str] = {}
    for group in plan.groups:
        # Byte-identical files carry the same EXIF: only groups with other copies are read
        # (a header each), so a folder of exact copies costs nothing here.
        others = [r for r in group.remove if r.method not in (EXACT, BURST)]
        if not others:
            continue
        kept = moment_of(Path(group.keep.absolute))
        if kept is None:
            continue
        for removal in others:
            mine = moment_of(Path(removal.file.absolute))
            if mine is not None and mine[0] == kept[0] and mine[1] != kept[1]:
                apart = abs(mine[1] - kept[1])
                held[Path(removal.file.absolute)] = (
                    f"another shot than its keeper {Path(group.keep.absolute).name} "
                    f"({mine[0]}, taken {apart:.2f} s apart): a burst, not a copy"
                )
    plan.hold_back(held)
    return plan


def bursts(moments: Sequence[tuple[int, str, float]], gap: float = BURST_GAP) -> list[list[int]]:
    """Runs of distinct shots (``(file, camera, seconds)``) by one camera, each at most
    ``gap`` seconds after the one before; two frames or more. Files of one capture time
    are copies of one shot, not a burst: a run needs two distinct times."""
    by_camera: dict[str, list[tuple[float, int]]] = defaultdict(list)
    for file, camera, seconds in moments:
        by_camera[camera].append((seconds, file))
    found = []
    for shots in by_camera.values():
        shots.sort()
        run: list[tuple[float, int]] = []
        for seconds, file in shots:
            if run and seconds - run[-1][0] > gap:
                if len({t for t, _ in run}) > 1:
                    found.append([f for _, f in run])
                run = []
            run.append((seconds, file))
        if len({t for t, _ in run}) > 1:
            found.append([f for _, f in run])
    return found


def add_best_of_bursts(
    plan: Plan, frames_of: Sequence[tuple[FileInfo, Sequence[FileInfo]]]
) -> dict[str, str]:
    """Plan the removal of every frame of each burst but its sharpest (``frames_of``: the
    sharpest and the others). A burst with a frame the plan already keeps or removes is
    left alone: that frame is a duplicate group's keeper or copy, and removing it for
    another frame could take a picture's last copy. Returns why each burst left alone was
    (by the path of its sharpest frame)."""
    planned = {Path(g.keep.absolute) for g in plan.groups}
    planned |= {Path(r.file.absolute) for g in plan.groups for r in g.remove}
    left = {}
    for best, others in frames_of:
        frames = [best, *others]
        if any(Path(f.absolute) in planned for f in frames):
            left[str(best.absolute)] = (
                "left as it is: a frame of it is in a duplicate group (act on that group first)"
            )
            continue
        plan.groups.append(
            PlannedGroup(
                best,
                tuple(Removal(f, 0.0, BURST) for f in others),
                "the sharpest frame of its burst",
            )
        )
        # A frame held back as "another shot, not a copy" is now planned, as the user asked.
        going = {str(f.absolute) for f in others}
        plan.held_back = [h for h in plan.held_back if h["path"] not in going]
    return left
