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

from dedup_cli.core.keep import best_of
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
            if method == EXACT:  # the same bytes: neither is a crop of the other
                self.contains.discard((a, b))
                self.contains.discard((b, a))
            elif crop is not None:
                # Sticky: several pairs can land on one pair of nodes (byte-identical sets
                # are one node); once one proof says a crop, the fuller picture stays.
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


def _merged(sets: Iterable[Iterable[int]]) -> list[list[int]]:
    """Sets that share a file are one set (equal bytes are equal bytes), each sorted."""
    parent: dict[int, int] = {}

    def root(i: int) -> int:
        while parent.setdefault(i, i) != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for copies in sets:
        members = list(copies)
        for other in members[1:]:
            parent[root(other)] = root(members[0])
        if members:
            root(members[0])
    merged: dict[int, list[int]] = defaultdict(list)
    for i in parent:
        merged[root(i)].append(i)
    return [sorted(m) for m in merged.values() if len(m) > 1]


def group_pairs(
    pairs: Pairs,
    rank: Callable[[int], Hashable],
    exact_sets: Iterable[Iterable[int]] = (),
    methods: Sequence[str] | None = None,
    crop_of: Sequence[int] | None = None,
    exact_links: Iterable[tuple[int, int]] = (),
    mates_follow_keeper: bool = True,
) -> list[Group]:
    """Groups from candidate pairs (all at or above the threshold) and exact-copy sets.

    ``rank(i)`` orders files as keepers: the smallest rank is kept. Exact copies (same
    content hash) always group. ``methods`` says how each pair was confirmed; ``crop_of``
    marks a pair whose left (0) or right (1) file is a crop of the other: the fuller picture
    never joins a group whose keeper is its crop. ``exact_links``: single byte-identical
    pairs (``cross``: across the two folders only), not sets. ``mates_follow_keeper=False``
    (``cross``, whose sets are each within one folder): a keeper's byte-identical mates are
    not removed in its favour.

    A set of byte-identical files is one node, held by its best-ranked member: every member
    has the same bytes, so the same links, and 30,000 copies of a photo are one node, not
    450 million links. The set opens up again in the groups: its other members go with its
    holder, as removals beside it or, when it is the keeper, as its exact copies.
    """
    holder: dict[int, int] = {}
    rest_of_set: dict[int, list[int]] = {}
    for members in _merged(exact_sets):
        best = min(members, key=lambda i: (rank(i), i))  # type: ignore[arg-type,return-value,unused-ignore]
        for member in members:
            holder[member] = best
        rest_of_set[best] = [m for m in members if m != best]

    def node(i: int) -> int:
        return holder.get(i, i)

    links = _Links()
    for k, (a, b, s) in enumerate(
        zip(pairs.left.tolist(), pairs.right.tolist(), pairs.similarity.tolist())
    ):
        side = crop_of[k] if crop_of is not None else -1
        crop = node(a) if side == 0 else node(b) if side == 1 else None
        links.add(
            node(a), node(b), float(s), methods[k] if methods is not None else EMBEDDING, crop
        )
    for a, b in exact_links:
        links.add(node(a), node(b), 1.0, EXACT)
    groups: list[Group] = []
    work = links.components(set(links.neighbours) | set(rest_of_set))
    while work:
        component = work.pop()
        keeper = best_of(rank, component)
        near = links.neighbours.get(keeper, {})
        members = sorted(
            i for i in component if i != keeper and i in near and (i, keeper) not in links.contains
        )
        group = Group(keeper=keeper)
        for copy in rest_of_set.get(keeper, []) if mates_follow_keeper else []:
            group.members.append(copy)
            group.similarity[copy], group.method[copy] = 1.0, EXACT
        for member in members:
            for file in (member, *rest_of_set.get(member, [])):
                group.members.append(file)
                group.similarity[file], group.method[file] = near[member]
        if group.members:
            group.members.sort()
            groups.append(group)
        rest = set(component) - {keeper} - set(members)
        work.extend(links.components(rest))
    groups.sort(key=lambda g: g.keeper)
    return groups
