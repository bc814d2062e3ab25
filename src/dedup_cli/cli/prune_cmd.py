"""``dedup prune-db``: drop rows of deleted files, follow renames, compact the database."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from dedup_cli.cli.common import (
    DbOpt,
    DebugOpt,
    HiddenOpt,
    JsonOpt,
    QuietOpt,
    RootArg,
    err_console,
    handle_errors,
    open_store,
    print_json,
)
from dedup_cli.cli.render import out_console
from dedup_cli.config import DEFAULT_PRUNE_MAX_FORGET
from dedup_cli.text import markup
from dedup_cli.units import human_bytes


def prune_command(
    root: RootArg,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Report what would change; change nothing.")
    ] = False,
    max_forget: Annotated[
        float,
        typer.Option(
            "--max-forget",
            min=0.0,
            max=1.0,
            metavar="FRACTION",
            help="Refuse to forget more than this share of the database's rows in one run "
            "(a missing or unmounted folder looks like deleted files).",
        ),
    ] = DEFAULT_PRUNE_MAX_FORGET,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Prune even over --max-forget, and even when ROOT has no image files at all.",
        ),
    ] = False,
    db: DbOpt = None,
    include_hidden: HiddenOpt = False,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Remove rows of files that no longer exist, keep embeddings of renamed files, compact."""
    with handle_errors():
        from dedup_cli.jobs.prune import prune_database

        with open_store(root, db) as store:
            report = prune_database(
                root,
                store,
                dry_run=dry_run,
                include_hidden=include_hidden,
                max_forget=max_forget,
                force=force,
            )
        if json_output:
            print_json(report.as_dict())
            return
        if quiet:
            return
        title = "dedup prune-db" + (" (dry run: nothing changed)" if dry_run else "")
        table = Table(title=title, show_header=False)
        table.add_row("rows before", str(report.rows_before))
        table.add_row("removed (file gone)", str(len(report.removed)))
        table.add_row("renamed (embeddings kept)", str(len(report.renamed)))
        table.add_row("changed (to re-embed)", str(len(report.changed)))
        table.add_row("touched (same bytes)", str(len(report.touched)))
        table.add_row("unchanged", str(report.unchanged))
        table.add_row(
            "database size",
            f"{human_bytes(report.bytes_before)} → {human_bytes(report.bytes_after)}",
        )
        out_console.print(table)
        if report.refusal is not None:
            err_console.print(
                f"[yellow]without --dry-run:[/yellow] {markup(report.refusal)}",
                highlight=False,
                soft_wrap=True,
            )
