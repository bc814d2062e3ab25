"""Bursts are not duplicates: several real shots a second apart look alike, and are not
copies of each other.

A copy keeps its original's capture time (EXIF DateTimeOriginal, SubSecTimeOriginal) or
loses it; it never gets another one. So two files of one camera whose capture times differ
are two shots, whatever their pixels say. As a policy on the proved plan this only takes
removals back (``hold_back_other_shots``), like ``core.sets``. ``find --bursts`` also lists
the bursts of the folder: runs of shots by one camera at most ``BURST_GAP`` seconds apart,
with the sharpest frame marked; nothing in a burst is planned for removal by it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

from dedup_cli.core.methods import EXACT
from dedup_cli.core.plan import Plan

BURST_GAP = 2.0  # seconds between two frames of one burst


def hold_back_other_shots(
    plan: Plan, moment_of: Callable[[Path], tuple[str, float] | None]
) -> Plan:
    """``plan`` without removals of a file that is another shot than its keeper (the same
    camera, another capture time); each is added to ``plan.held_back``."""
    held: dict[Path, str] = {}
    for group in plan.groups:
        # Byte-identical files carry the same EXIF: only groups with other copies are read
        # (a header each), so a folder of exact copies costs nothing here.
        others = [r for r in group.remove if r.method != EXACT]
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
