"""``dedup hash``: embed new and changed photos into the database."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from dedup_cli.cli.common import (
    BatchOpt,
    DbOpt,
    DebugOpt,
    DeviceOpt,
    EmbeddingTypeOpt,
    EngineOpt,
    ExcludeOpt,
    HiddenOpt,
    JsonOpt,
    ModelOpt,
    QuietOpt,
    RayAddressOpt,
    RichProgress,
    RootArg,
    WeightsOpt,
    WorkersOpt,
    embed_options,
    handle_errors,
    open_store,
    print_json,
)
from dedup_cli.cli.render import out_console
from dedup_cli.config import DEFAULT_BATCH_SIZE, DEFAULT_MODEL
from dedup_cli.embed.pipeline import HashReport
from dedup_cli.text import markup


def hash_command(
    root: RootArg,
    model: ModelOpt = DEFAULT_MODEL,
    embedding_type: EmbeddingTypeOpt = None,
    db: DbOpt = None,
    batch_size: BatchOpt = DEFAULT_BATCH_SIZE,
    workers: WorkersOpt = None,
    device: DeviceOpt = "auto",
    weights: WeightsOpt = None,
    include_hidden: HiddenOpt = False,
    exclude: ExcludeOpt = None,
    engine: EngineOpt = "local",
    ray_address: RayAddressOpt = None,
    export: Annotated[
        Path | None,
        typer.Option(
            "--export",
            metavar="DIR",
            help="With --engine ray: the workers write Parquet shards of the new and changed "
            "files' facts and vectors to DIR (on shared storage), for dedup import, instead "
            "of the driver writing the database.",
        ),
    ] = None,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Embed new and changed images under ROOT (a rerun only stats unchanged files)."""
    with handle_errors():
        from dedup_cli.embed.pipeline import embed_root
        from dedup_cli.models import get_spec

        spec = get_spec(model, embedding_type)
        options = embed_options(
            device, weights, batch_size, workers, include_hidden, exclude, engine, ray_address
        )
        if export is not None:
            from dataclasses import replace

            options = replace(options, export=export.expanduser().resolve())
        with open_store(root, db) as store:
            report = embed_root(
                root.resolve(), store, spec, options, RichProgress("hashing", quiet or json_output)
            )
        if json_output:
            print_json(report.as_dict())
        elif not quiet:
            print_hash_summary(report)


def print_hash_summary(report: HashReport) -> None:
    table = Table(title=f"dedup hash · {report.model} on {report.device}", show_header=False)
    table.add_row("files scanned", str(report.scanned))
    if report.export is not None:
        table.add_row("exported", f"{report.exported} rows to {markup(report.export)}")
    else:
        table.add_row(
            "embedded now", f"{report.embedded} ({report.images_per_second:.1f} images/s)"
        )
    table.add_row("unchanged", str(report.unchanged))
    table.add_row("unreadable", f"{len(report.failed)} new, {report.known_bad} known")
    if report.skipped_symlinks:
        table.add_row("symlinks skipped", str(report.skipped_symlinks))
    if report.skipped_excluded:
        table.add_row("left out by --exclude", str(report.skipped_excluded))
    if report.scan_errors:
        table.add_row("folders/files not readable", str(len(report.scan_errors)))
    table.add_row("database", markup(report.database))
    out_console.print(table)
    for path, error in report.failed[:20]:
        out_console.print(
            f"  [yellow]skipped[/yellow] {markup(path)}: {markup(error)}", highlight=False
        )
    if len(report.failed) > 20:
        out_console.print(f"  … and {len(report.failed) - 20} more (see --json)")
