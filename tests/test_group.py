from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from dedup_cli.core.group import group_pairs
from dedup_cli.core.methods import EXACT
from dedup_cli.core.pairs import Pairs


def pairs_from(edges: dict[tuple[int, int], float]) -> Pairs:
    items = sorted((min(a, b), max(a, b), s) for (a, b), s in edges.items() if a != b)
    if not items:
        return Pairs.empty()
    left, right, sim = zip(*items)
    return Pairs(np.array(left), np.array(right), np.array(sim, dtype=np.float32))


def test_chain_does_not_remove_the_far_end() -> None:
    # A~B and B~C, but A and C are not similar. A is kept (best rank).
    groups = group_pairs(pairs_from({(0, 1): 0.97, (1, 2): 0.97}), rank=lambda i: i)
    assert [(g.keeper, g.members) for g in groups] == [(0, [1])]


def test_leftovers_form_their_own_groups() -> None:
    # 0~1, 1~2, 2~3: keep 0 removes 1; what is left (2, 3) groups again around 2.
    groups = group_pairs(pairs_from({(0, 1): 0.99, (1, 2): 0.99, (2, 3): 0.99}), rank=lambda i: i)
    assert sorted((g.keeper, g.members) for g in groups) == [(0, [1]), (2, [3])]


def test_exact_copies_always_group_and_are_labelled() -> None:
    groups = group_pairs(Pairs.empty(), rank=lambda i: -i, exact_sets=[[1, 4, 2]])
    assert len(groups) == 1 and groups[0].keeper == 4 and groups[0].members == [1, 2]
    assert set(groups[0].method.values()) == {EXACT}
    assert groups[0].similarity == {1: 1.0, 2: 1.0}


edge_strategy = st.dictionaries(
    st.tuples(st.integers(0, 14), st.integers(0, 14)), st.floats(0.9, 1.0), max_size=40
)


@settings(max_examples=200, deadline=None)
@given(
    edges=edge_strategy,
    ranks=st.lists(st.integers(0, 5), min_size=15, max_size=15),
    exact=st.lists(st.lists(st.integers(0, 14), min_size=2, max_size=4), max_size=3),
)
def test_group_invariants(
    edges: dict[tuple[int, int], float], ranks: list[int], exact: list[list[int]]
) -> None:
    pairs = pairs_from(edges)
    same = list(range(15))  # files of one byte-identical set share their links

    def find(i: int) -> int:
        while same[i] != i:
            i = same[i]
        return i

    for members in exact:
        for other in members[1:]:
            same[find(other)] = find(members[0])
    linked = {(find(a), find(b)) for a, b in edges if find(a) != find(b)}
    linked |= {(b, a) for a, b in linked}
    groups = group_pairs(pairs, rank=lambda i: ranks[i], exact_sets=exact)
    removed: list[int] = []
    keepers = [g.keeper for g in groups]
    for g in groups:
        # Exactly one keeper, not among its own removals.
        assert g.keeper not in g.members and g.members
        for m in g.members:
            # No chaining: every removed file is directly linked to its own keeper.
            assert find(g.keeper) == find(m) or (find(g.keeper), find(m)) in linked
            # The keeper is the best-ranked file of its group.
            assert (ranks[g.keeper], g.keeper) < (ranks[m], m)
        removed.extend(g.members)
    # A file is removed at most once and never is a keeper of any group.
    assert len(removed) == len(set(removed))
    assert not set(removed) & set(keepers)


def test_full_picture_is_never_removed_in_favour_of_its_crop() -> None:
    # 1 is a crop of 0 (crop_of=1: the right file is the crop). Ranked first, the crop 1 is
    # the keeper, yet the fuller picture 0 must not go: it stays, ungrouped.
    pairs = pairs_from({(0, 1): 0.95})
    groups = group_pairs(pairs, rank=lambda i: -i, methods=["geometry"], crop_of=[1])
    assert groups == []
    # With the full picture as keeper, the crop may go, labelled with its check.
    groups = group_pairs(pairs, rank=lambda i: i, methods=["geometry"], crop_of=[1])
    assert [(g.keeper, g.members, g.method) for g in groups] == [(0, [1], {1: "geometry"})]


def test_a_crop_proof_is_not_undone_by_another_pair_of_the_same_nodes() -> None:
    """Found in review: 1 and 2 are byte-identical (one node, held by 1). 0 is proved to
    contain 2 (2 is its crop); a second proof of (0, 1) without crop information must not
    make the crop the keeper of the fuller picture 0."""
    pairs = Pairs(np.array([0, 0]), np.array([2, 1]), np.array([0.9, 0.9], dtype=np.float32))
    groups = group_pairs(
        pairs,
        rank=lambda i: {0: 5, 1: 0, 2: 1}[i],
        exact_sets=[[1, 2]],
        methods=["geometry", "pixels"],
        crop_of=[1, -1],
    )
    assert all(0 not in g.members for g in groups)
