"""Policy on a proved plan: files that belong together are kept or removed together.

A RAW and the JPEG of the same shot, a Live Photo's still and its movie (``media.companions``
finds them) are one *set*. The policy runs on the plan after the proof and only ever takes
removals out of it, never adds one:

- a file is never removed in favour of a member of its own set (the JPEG is not a copy to
  drop because its RAW is kept);
- a file whose set companions are not all planned for removal stays, so no set is split
  (a Live Photo's still does not go while its movie stays).

Dropping one removal can leave another set incomplete, so the rule runs until nothing
changes. What it held back is listed with the reason (``Plan.held_back``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from dedup_cli.config import PAIRS
from dedup_cli.core.plan import Plan
from dedup_cli.errors import UsageError


def check_pairs(pairs: str) -> str:
    if pairs not in PAIRS:
        raise UsageError(f"--pairs must be one of {', '.join(PAIRS)}, not {pairs!r}")
    return pairs


def keep_sets_whole(plan: Plan, companions_of: Callable[[Path], list[Path]]) -> Plan:
    """``plan`` without the removals that would split a set; each one held back is added to
    ``plan.held_back`` with its reason. Returns the same plan, changed in place."""
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
    plan.hold_back(held)
    return plan
