"""The names a Python user imports: the same jobs the CLI runs, over the same library.

    from pathlib import Path
    from dedup_cli.api import EmbedOptions, Store, default_db_path, find_duplicates, get_spec

    root = Path("~/Pictures").expanduser()
    with Store(default_db_path(root)) as store:
        result = find_duplicates(root, store, get_spec("effnet"), EmbedOptions(device="cpu"))
    print(result.plan.as_dict()["summary"])

Several folders, each with its own database, are one collection through ``find_in_folders``
(``[Folder(root, store), ...]``).

Acting on a plan goes through ``carry_out`` (or ``execute_plan``), which re-checks every
file at the moment of acting, under the folder lock; ``undo_run`` puts a move back.
"""

from __future__ import annotations

from dedup_cli.act.execute import ActionReport, carry_out, execute_plan, undo_run
from dedup_cli.core.files import FileInfo
from dedup_cli.core.keep import CROSS_RULES, FIND_RULES, KEEP_RULES, NAME_RULES
from dedup_cli.core.pairs import Pairs
from dedup_cli.core.plan import Plan
from dedup_cli.embed.pipeline import EmbedOptions, embed_root
from dedup_cli.errors import DedupError, UsageError
from dedup_cli.jobs.cross import cross_find
from dedup_cli.jobs.find import FindResult, Folder, find_duplicates, find_in_folders
from dedup_cli.jobs.names import clean_by_names
from dedup_cli.jobs.prune import prune_database
from dedup_cli.models import get_spec, list_models
from dedup_cli.store import Store, default_db_path

__all__ = [
    "CROSS_RULES",
    "FIND_RULES",
    "KEEP_RULES",
    "NAME_RULES",
    "ActionReport",
    "DedupError",
    "EmbedOptions",
    "FileInfo",
    "FindResult",
    "Folder",
    "Pairs",
    "Plan",
    "Store",
    "UsageError",
    "carry_out",
    "clean_by_names",
    "cross_find",
    "default_db_path",
    "embed_root",
    "execute_plan",
    "find_duplicates",
    "find_in_folders",
    "get_spec",
    "list_models",
    "prune_database",
    "undo_run",
]
