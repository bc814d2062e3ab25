"""The browser reviewer's decisions, saved in the database as they are made.

A reload, a crash or a new ``dedup review`` of the same folder finds each group as the
reviewer left it. A group is named by its members (absolute path and content hash of each
file): when the plan changes a group (a new copy, a file edited), its key changes and the
old decision no longer applies, so nothing decided about other files is ever carried over.
Decisions name files by path, never by position, for the same reason.
"""

from __future__ import annotations

import hashlib
from typing import Any

from dedup_cli.review.session import ReviewGroup, ReviewSession
from dedup_cli.store import Store


def group_key(group: ReviewGroup) -> str:
    """A name for a group that changes whenever its members do."""
    members = sorted(f"{f.absolute}\0{f.content_hash or ''}" for f in group.files)
    return hashlib.sha256("\n".join(members).encode("utf-8", "surrogateescape")).hexdigest()


def decision_of(group: ReviewGroup) -> dict[str, Any]:
    """What is saved of a group: by paths, so it means the same files on every load."""
    names = [str(f.absolute) for f in group.files]
    return {
        "keeper": names[group.keeper],
        "remove": sorted(names[i] for i in group.remove if i != group.keeper),
        "not_duplicates": group.not_duplicates,
        "accepted": group.accepted,
        "applied": group.applied,  # for the record only (see ``restore_decisions``)
    }


def save_decision(store: Store, group: ReviewGroup) -> None:
    store.save_review_decision(group_key(group), decision_of(group))


def restore_decisions(session: ReviewSession, store: Store) -> int:
    """Put the saved decisions back on the session's groups; returns how many applied. A
    saved decision is checked against the group: a keeper or removal that is not one of its
    files voids the whole decision (the row is a cache, not a witness), and the keeper is
    never also a removal."""
    editable = [g for g in session.groups if g.related is None]
    saved = store.review_decisions(group_key(g) for g in editable)
    restored = 0
    for group in editable:
        decision = saved.get(group_key(group))
        if decision is None:
            continue
        position = {str(f.absolute): k for k, f in enumerate(group.files)}
        keeper = position.get(str(decision.get("keeper")))
        remove_names = decision.get("remove")
        if keeper is None or not isinstance(remove_names, list):
            continue
        remove = {position.get(str(name)) for name in remove_names}
        if None in remove:
            continue
        group.keeper = keeper
        group.remove = {k for k in remove if k is not None and k != keeper}
        group.not_duplicates = decision.get("not_duplicates") is True
        group.accepted = decision.get("accepted") is True
        # "Carried out" is never restored: a group found whole again by a new plan (its
        # files all back, or all skipped) is open to be looked at and applied again.
        restored += 1
    return restored
