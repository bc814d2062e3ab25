"""``dedup import``: merge the Parquet shards of ``hash --engine ray --export`` into a
folder's database."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from dedup_cli.cli.common import (
    DbOpt,
    DebugOpt,
    JsonOpt,
    QuietOpt,
    handle_errors,
    open_store,
    print_json,
)
from dedup_cli.cli.render import out_console
from dedup_cli.embed.shards import ImportReport
from dedup_cli.text import markup


def import_command(
    shards: Annotated[Path, typer.Argument(metavar="DIR", help="The folder hash --export wrote.")],
    root: Annotated[
        Path | None,
        typer.Option(
            "--root",
            metavar="ROOT",
            help="The photos' folder (default: the one the export was made from).",
        ),
    ] = None,
    db: DbOpt = None,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Write exported facts and vectors into ROOT's database; rows of files changed since
    are left for dedup hash, damaged rows are refused and listed."""
    with handle_errors():
        from dedup_cli.embed.shards import import_shards, read_manifest

        folder = shards.expanduser().resolve()
        target = (root or Path(read_manifest(folder)["root"])).expanduser().resolve()
        with open_store(target, db) as store:
            report = import_shards(folder, store, target)
        if json_output:
            print_json(report.as_dict())
        elif not quiet:
            print_import_summary(report)


def print_import_summary(report: ImportReport) -> None:
    table = Table(title=f"dedup import · {report.model}", show_header=False)
    table.add_row("written", str(report.imported))
    table.add_row("already there", str(report.unchanged))
    table.add_row("changed since (left for dedup hash)", str(report.changed))
    table.add_row("refused as damaged", str(len(report.damaged)))
    table.add_row("database", markup(report.database))
    out_console.print(table)
    for path, why in report.damaged[:20]:
        out_console.print(f"  [yellow]refused[/yellow] {markup(path)}: {markup(why)}")
