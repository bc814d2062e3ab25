"""``dedup filename-clean``: a fast first pass by names, confirmed by content."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from dedup_cli.cli.acting import (
    ActingChoices,
    ActionOpt,
    HtmlOpt,
    ReviewOpt,
    ToOpt,
    YesOpt,
    check_action,
    end_with_plan,
    planning_lock,
)
from dedup_cli.cli.common import (
    DbOpt,
    DebugOpt,
    ExcludeOpt,
    HiddenOpt,
    JsonOpt,
    ModelOpt,
    QuietOpt,
    RichProgress,
    RootArg,
    err_console,
    handle_errors,
    open_store,
)
from dedup_cli.cli.render import out_console, print_plan
from dedup_cli.config import DEFAULT_KEEP, DEFAULT_MODEL, choices
from dedup_cli.core.keep import NAME_RULES
from dedup_cli.units import human_bytes


def filename_clean_command(
    root: RootArg,
    verify: Annotated[
        bool,
        typer.Option(
            "--verify/--no-verify",
            help="Confirm each name pair by content (default). --no-verify acts on names alone.",
        ),
    ] = True,
    keep: Annotated[
        str,
        typer.Option(
            "--keep",
            metavar=choices(NAME_RULES),
            help="quality (the best copy; see docs/keep.md), base (name.jpg stays) or largest.",
        ),
    ] = DEFAULT_KEEP,
    threshold: Annotated[
        float | None,
        typer.Option(
            "--threshold",
            "-t",
            metavar="T",
            help="Embedding similarity when both are stored.",
            show_default=False,
        ),
    ] = None,
    model: ModelOpt = DEFAULT_MODEL,
    action: ActionOpt = "report",
    to: ToOpt = None,
    yes: YesOpt = False,
    html: HtmlOpt = None,
    review: ReviewOpt = "auto",
    db: DbOpt = None,
    include_hidden: HiddenOpt = False,
    exclude: ExcludeOpt = None,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Find copies by name (name (1).jpg, Copy of name.jpg …) and confirm them by content."""
    with handle_errors():
        from dedup_cli.jobs.names import clean_by_names
        from dedup_cli.jobs.workflow import validate_threshold
        from dedup_cli.models import get_spec

        check_action(action, to, review, html, [root])
        if threshold is not None:
            validate_threshold(threshold)
        spec = get_spec(model)
        silent = json_output or quiet
        with open_store(root, db) as store, planning_lock(action, [root]):
            result = clean_by_names(
                root,
                store,
                spec,
                threshold=threshold,
                keep=keep,
                verify=verify,
                include_hidden=include_hidden,
                progress=RichProgress("filename-clean", silent),
                exclude=tuple(exclude or ()),
            )
            document: dict[str, Any] = result.as_dict()
            if not silent:
                _print_summary(result)
            end_with_plan(
                result.plan,
                [store],
                document,
                "dedup filename-clean",
                ActingChoices(action, to, yes, review, html),
                silent=silent,
                json_output=json_output,
            )


def _print_summary(result: Any) -> None:
    plan = result.plan
    if not result.verified:
        err_console.print("[yellow]--no-verify: pairs are planned on their names alone[/yellow]")
    print_plan(plan)
    table = Table(title="dedup filename-clean", show_header=False)
    table.add_row("name pairs", str(result.name_pairs))
    table.add_row("confirmed", str(result.confirmed))
    table.add_row("not confirmed (kept)", str(len(result.unconfirmed)))
    table.add_row("files to remove", str(plan.files_to_remove))
    table.add_row("space to free", human_bytes(plan.bytes_to_free))
    out_console.print(table)
