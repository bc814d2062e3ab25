"""The state of a review, independent of how it is shown (terminal, matplotlib, tests).

A review walks the groups of a plan; in each group one file is the keeper (never removed),
each other file is marked keep or remove, and a whole group can be marked "not duplicates",
which drops it from the plan and is remembered in the database by content hash. The result
is a new plan, which is what gets confirmed and carried out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dedup_cli.core.files import FileInfo
from dedup_cli.core.methods import REVIEWED
from dedup_cli.core.plan import Plan, PlannedGroup, Removal


@dataclass
class ReviewGroup:
    """One group under review: its files, the keeper, and the files marked for removal."""

    files: list[FileInfo]
    keeper: int
    remove: set[int]
    similarity: dict[int, float] = field(default_factory=dict)
    method: dict[int, str] = field(default_factory=dict)
    not_duplicates: bool = False
    # A related pair (an overlay, a caption, one frame): shown, never removed or edited.
    related: str | None = None
    # The browser reviewer's "accept": only accepted groups are carried out from the page.
    accepted: bool = False
    # The run that carried this group out (the browser reviewer); it is not done twice.
    applied: str | None = None


class ReviewSession:
    """Cursor over groups and files, with the edits a reviewer can make."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.groups: list[ReviewGroup] = []
        for g in plan.groups:
            files = [g.keep, *(r.file for r in g.remove)]
            self.groups.append(
                ReviewGroup(
                    files=files,
                    keeper=0,
                    remove=set(range(1, len(files))),
                    similarity={k + 1: r.similarity for k, r in enumerate(g.remove)},
                    method={k + 1: r.method for k, r in enumerate(g.remove)},
                )
            )
        for pair in plan.related:
            files = [_related_file(pair["a"]), _related_file(pair["b"])]
            self.groups.append(
                ReviewGroup(files=files, keeper=0, remove=set(), related=pair.get("reason", ""))
            )
        self.index = 0
        self.selected = 0
        self.finished = False
        self.cancelled = False

    @property
    def group(self) -> ReviewGroup:
        return self.groups[self.index]

    def heading(self) -> str:
        """The line above a group: where it is, and what it is."""
        group = self.group
        groups = sum(1 for g in self.groups if g.related is None)
        if group.related is not None:
            number = self.index - groups + 1
            return (
                f"related pair {number} of {len(self.groups) - groups}: {group.related}; "
                "both files stay"
            )
        heading = f"group {self.index + 1} of {groups}"
        if group.not_duplicates:
            heading += "   NOT DUPLICATES (will be remembered)"
        return heading

    def similarity_label(self, position: int) -> str | None:
        """What a file's caption says of its similarity. The scores are to the proposed
        keeper (the first file), so once the reviewer picks another keeper they say so,
        and the keeper itself shows none."""
        group = self.group
        if position == group.keeper:
            return None
        if group.keeper != 0 and position == 0:
            return "the proposed keeper"
        similarity = group.similarity.get(position)
        if similarity is None:
            return None
        to = "keeper" if group.keeper == 0 else "the proposed keeper"
        return f"similarity to {to} {similarity:.3f}"

    # -- moving ---------------------------------------------------------------------------

    def next_group(self) -> None:
        if self.groups:
            self.index = min(self.index + 1, len(self.groups) - 1)
            self.selected = 0

    def previous_group(self) -> None:
        self.index = max(self.index - 1, 0)
        self.selected = 0

    def select(self, delta: int) -> None:
        if self.groups:
            self.selected = (self.selected + delta) % len(self.group.files)

    # -- editing --------------------------------------------------------------------------

    def make_keeper(self, position: int | None = None) -> None:
        """The selected (or given) file stays; the previous keeper is kept too, unless the
        reviewer marks it for removal, so a group never loses its last copy."""
        if self.groups and self.group.related is not None:
            return  # a related pair is shown, never edited
        if not self.groups:
            return
        group = self.group
        position = self.selected if position is None else position
        group.keeper = position
        group.remove.discard(position)

    def toggle(self, position: int | None = None) -> None:
        """Switch the selected file between keep and remove (never the keeper)."""
        if self.groups and self.group.related is not None:
            return  # a related pair is shown, never edited
        if not self.groups:
            return
        group = self.group
        position = self.selected if position is None else position
        if position == group.keeper:
            return
        if position in group.remove:
            group.remove.discard(position)
        else:
            group.remove.add(position)

    def toggle_not_duplicates(self) -> None:
        if self.groups and self.group.related is not None:
            return  # a related pair is shown, never edited
        if self.groups:
            self.group.not_duplicates = not self.group.not_duplicates

    def finish(self) -> None:
        self.finished = True

    def cancel(self) -> None:
        self.cancelled = True

    # -- result ---------------------------------------------------------------------------

    def result(self, only_accepted: bool = False) -> Plan:
        """The reviewed plan; a cancelled review removes nothing. ``only_accepted``: only
        the groups the reviewer accepted and no run carried out yet (the browser)."""
        reviewed = Plan(
            self.plan.root,
            self.plan.model,
            self.plan.threshold,
            self.plan.keep_strategy,
            not_duplicates=self.not_duplicate_groups(),
            roots=self.plan.roots,
            held_back=self.plan.held_back,
            followers=self.plan.followers,
            with_followers=self.plan.with_followers,
        )
        if self.cancelled:
            return reviewed
        for group, proposed in zip(self.groups, self.plan.groups):
            if group.not_duplicates or not group.remove:
                continue
            if only_accepted and (not group.accepted or group.applied):
                continue
            removals = tuple(
                Removal(
                    group.files[i],
                    group.similarity.get(i, 1.0),
                    group.method.get(i, REVIEWED) if group.keeper == 0 else REVIEWED,
                )
                for i in sorted(group.remove)
                if i != group.keeper
            )
            why = proposed.why if group.keeper == 0 else "chosen in review"
            reviewed.groups.append(PlannedGroup(group.files[group.keeper], removals, why))
        return reviewed

    def not_duplicate_groups(self) -> list[list[str]]:
        """Content hashes of the groups marked "not duplicates", to remember them."""
        return [
            [f.content_hash for f in g.files if f.content_hash]
            for g in self.groups
            if g.not_duplicates and not self.cancelled and g.related is None
        ]


def _related_file(path: str) -> FileInfo:
    """A file of a related pair, as far as the review shows it (it is never acted on)."""
    from pathlib import Path

    from dedup_cli.media.provenance import pixel_size

    absolute = Path(path)
    try:
        size = absolute.stat().st_size
    except OSError:
        size = 0
    pixels = pixel_size(absolute) or (None, None)
    return FileInfo(str(absolute), absolute, size, 0, None, pixels[0], pixels[1])
