"""``dedup review``: plan as ``find`` does, then review and resolve the groups in the browser."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from dedup_cli.cli.common import (
    BatchOpt,
    DbOpt,
    DebugOpt,
    DeviceOpt,
    EmbeddingTypeOpt,
    ExcludeOpt,
    HiddenOpt,
    ModelOpt,
    PairsOpt,
    PreferOpt,
    QuietOpt,
    RichProgress,
    RootsArg,
    ThresholdOpt,
    WeightsOpt,
    WorkersOpt,
    check_folders,
    embed_options,
    err_console,
    handle_errors,
    open_store,
    preferred_formats,
)
from dedup_cli.config import DEFAULT_BATCH_SIZE, DEFAULT_KEEP, DEFAULT_MODEL, choices
from dedup_cli.core.keep import FIND_RULES
from dedup_cli.text import markup

if TYPE_CHECKING:
    from dedup_cli.core.plan import Plan
    from dedup_cli.jobs.find import Folder
    from dedup_cli.review.session import ReviewSession
    from dedup_cli.store import Store


def review_command(
    roots: RootsArg,
    port: Annotated[
        int,
        typer.Option("--port", metavar="N", help="Port on 127.0.0.1 (default: any free one)."),
    ] = 0,
    no_open: Annotated[
        bool, typer.Option("--no-open", help="Print the address; do not open a browser.")
    ] = False,
    plan_file: Annotated[
        Path | None,
        typer.Option(
            "--plan",
            metavar="FILE",
            help="Review a plan written by find --json instead of planning again (every "
            "file is read and every pair proved again; what no longer holds is dropped).",
        ),
    ] = None,
    allow_delete: Annotated[
        bool,
        typer.Option(
            "--allow-delete",
            help="Offer permanent deletion in the page (otherwise trash or move only).",
        ),
    ] = False,
    model: ModelOpt = DEFAULT_MODEL,
    embedding_type: EmbeddingTypeOpt = None,
    threshold: ThresholdOpt = None,
    keep: Annotated[
        str,
        typer.Option(
            "--keep",
            metavar=choices(FIND_RULES),
            help="Which file the plan keeps at first (see docs/keep.md).",
        ),
    ] = DEFAULT_KEEP,
    prefer: PreferOpt = None,
    pairs: PairsOpt = "keep",
    db: DbOpt = None,
    batch_size: BatchOpt = DEFAULT_BATCH_SIZE,
    workers: WorkersOpt = None,
    device: DeviceOpt = "auto",
    weights: WeightsOpt = None,
    include_hidden: HiddenOpt = False,
    exclude: ExcludeOpt = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Plan as find does, then review in the browser: decide per group, Apply, Undo."""
    with handle_errors():
        from dedup_cli.core.keep import check_keep
        from dedup_cli.core.sets import check_pairs
        from dedup_cli.errors import UsageError
        from dedup_cli.jobs.find import Folder, find_in_folders
        from dedup_cli.jobs.workflow import validate_threshold
        from dedup_cli.models import get_spec

        check_folders(roots, db)
        check_keep(keep, FIND_RULES)
        order = preferred_formats(prefer, keep)
        check_pairs(pairs)
        if threshold is not None:
            validate_threshold(threshold)
        if not 0 <= port <= 65535:
            raise UsageError(f"--port must be 0..65535, not {port}")
        spec = get_spec(model, embedding_type)
        options = embed_options(device, weights, batch_size, workers, include_hidden, exclude)
        if plan_file is not None and not plan_file.is_file():
            raise UsageError(f"--plan {plan_file} is not a file")
        with ExitStack() as held:
            stores = [held.enter_context(open_store(root, db)) for root in roots]
            folders = [Folder(root, store) for root, store in zip(roots, stores)]
            if plan_file is not None:
                plan = _plan_from_file(plan_file, folders, quiet)
            else:
                plan = find_in_folders(
                    folders,
                    spec,
                    options,
                    threshold=threshold,
                    keep=keep,
                    prefer=order,
                    pairs=pairs,
                    progress=RichProgress("hashing", quiet),
                ).plan
            serve_plan(plan, stores, allow_delete=allow_delete, port=port, open_browser=not no_open)


def _plan_from_file(path: Path, folders: list[Folder], quiet: bool) -> Plan:
    """The plan file as the files still prove it; what was dropped is said on stderr."""
    from dedup_cli.jobs.plan_file import plan_from_file

    read = plan_from_file(path, folders)
    if not quiet:
        for item in read.dropped:
            err_console.print(
                f"dropped from the plan: {markup(item['path'])}: {markup(item['reason'])}",
                highlight=False,
            )
    return read.plan


def serve_plan(
    plan: Plan,
    stores: Sequence[Store],
    *,
    allow_delete: bool,
    port: int,
    open_browser: bool,
    returns_to_terminal: bool = False,
) -> ReviewSession:
    """Serve ``plan`` for review until Ctrl-C (or "Finish review"); returns the session."""
    from dedup_cli.review.session import ReviewSession
    from dedup_cli.review.web import WebReview, serve

    session = ReviewSession(plan)
    review = WebReview(session, stores, allow_delete=allow_delete)

    def announce(url: str) -> None:
        groups = sum(1 for g in session.groups if g.related is None)
        err_console.print(
            f"reviewing {groups} group(s) at {url}\n(open it in a browser on this machine; "
            "Ctrl-C stops the server)",
            highlight=False,
            soft_wrap=True,
        )

    serve(
        review,
        port,
        open_browser=open_browser,
        announce=announce,
        returns_to_terminal=returns_to_terminal,
    )
    return session
