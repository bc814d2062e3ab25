"""Pairs -> groups without chaining.

Embeddings link look-alikes, so connected components can chain A~B~C although A and C differ.
Here a component only proposes candidates: the best file by the keep strategy becomes the
keeper, and only files whose *own* similarity to that keeper reaches the threshold join its
group. What is left of the component is grouped again the same way, so every group is a star
around a keeper that stays, and nothing is removed for resembling a file that is removed.
A picture is never removed in favour of a crop of it: it shows more than its keeper would.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field

from dedup_cli.core.methods import EMBEDDING, EXACT
from dedup_cli.core.pairs import Pairs


@dataclass
class Group:
    """A keeper and the files that may go, each with its similarity to the keeper."""

    keeper: int
    members: list[int] = field(default_factory=list)
    similarity: dict[int, float] = field(default_factory=dict)
    method: dict[int, str] = field(default_factory=dict)


class _Links:
    """Symmetric similarity lookup for the candidate pairs."""

    def __init__(self) -> None:
        self.neighbours: dict[int, dict[int, tuple[float, str]]] = defaultdict(dict)
        self.contains: set[tuple[int, int]] = set()  # (container, crop) pairs

    def add(self, a: int, b: int, similarity: float, method: str, crop: int | None = None) -> None:
        if a == b:
            return
        old = self.neighbours[a].get(b)
        if old is None or old[1] != EXACT:
            self.neighbours[a][b] = (similarity, method)
            self.neighbours[b][a] = (similarity, method)
            self.contains.discard((a, b))
            self.contains.discard((b, a))
            if crop is not None and method != EXACT:
                self.contains.add((b, a) if crop == a else (a, b))

    def components(self, nodes: Iterable[int]) -> list[list[int]]:
        """Connected components among ``nodes`` using only links between them."""
        allowed = set(nodes)
        seen: set[int] = set()
        out: list[list[int]] = []
        for start in sorted(allowed):
            if start in seen:
                continue
            stack, comp = [start], []
            seen.add(start)
            while stack:
                node = stack.pop()
                comp.append(node)
                for nxt in self.neighbours.get(node, {}):
                    if nxt in allowed and nxt not in seen:
                        seen.add(nxt)
                        stack.append(nxt)
            out.append(sorted(comp))
        return out


def group_pairs(
    pairs: Pairs,
    rank: Callable[[int], Hashable],
    exact_sets: Iterable[Iterable[int]] = (),
    methods: Sequence[str] | None = None,
    crop_of: Sequence[int] | None = None,
) -> list[Group]:
    """Groups from candidate pairs (all at or above the threshold) and exact-copy sets.

    ``rank(i)`` orders files as keepers: the smallest rank is kept. Exact copies (same
    content hash) are linked with similarity 1.0 and always group. ``methods`` says how each
    pair was confirmed; ``crop_of`` marks a pair whose left (0) or right (1) file is a crop of
    the other: the fuller picture never joins a group whose keeper is its crop.
    """
    links = _Links()
    for k, (a, b, s) in enumerate(
        zip(pairs.left.tolist(), pairs.right.tolist(), pairs.similarity.tolist())
    ):
        side = crop_of[k] if crop_of is not None else -1
        crop = a if side == 0 else b if side == 1 else None
        links.add(a, b, float(s), methods[k] if methods is not None else EMBEDDING, crop)
    for copies in exact_sets:
        members = sorted(set(copies))
        for a in members:
            for b in members:
                if a < b:
                    links.add(a, b, 1.0, EXACT)
    groups: list[Group] = []
    work = links.components(links.neighbours.keys())
    while work:
        component = work.pop()
        if len(component) < 2:
            continue
        keeper = min(component, key=lambda i: (rank(i), i))  # type: ignore[arg-type,return-value,unused-ignore]
        near = links.neighbours.get(keeper, {})
        members = sorted(
            i for i in component if i != keeper and i in near and (i, keeper) not in links.contains
        )
        if members:
            groups.append(
                Group(
                    keeper=keeper,
                    members=members,
                    similarity={m: near[m][0] for m in members},
                    method={m: near[m][1] for m in members},
                )
            )
        rest = set(component) - {keeper} - set(members)
        work.extend(links.components(rest))
    groups.sort(key=lambda g: g.keeper)
    return groups
