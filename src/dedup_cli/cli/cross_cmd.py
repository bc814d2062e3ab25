"""``dedup cross A B``: duplicates between two folders, each with its own database."""

from __future__ import annotations

from pathlib import Path
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
    BatchOpt,
    DebugOpt,
    DeviceOpt,
    EmbeddingTypeOpt,
    EngineOpt,
    ExcludeOpt,
    GeometricOpt,
    HiddenOpt,
    IndexOpt,
    JsonOpt,
    MergeOpt,
    ModelOpt,
    PairsOpt,
    PreferOpt,
    QuietOpt,
    RayAddressOpt,
    RichProgress,
    ThresholdOpt,
    WeightsOpt,
    WorkersOpt,
    embed_options,
    handle_errors,
    open_store,
    preferred_formats,
)
from dedup_cli.cli.render import out_console, print_plan
from dedup_cli.config import DEFAULT_BATCH_SIZE, DEFAULT_KEEP, DEFAULT_MODEL, choices
from dedup_cli.core.keep import CROSS_RULES
from dedup_cli.units import human_bytes


def cross_command(
    folder_a: Annotated[Path, typer.Argument(metavar="A", help="Folder A.", show_default=False)],
    folder_b: Annotated[Path, typer.Argument(metavar="B", help="Folder B.", show_default=False)],
    keep: Annotated[
        str,
        typer.Option(
            "--keep",
            metavar=choices(CROSS_RULES),
            help="quality (the best copy anywhere; see docs/keep.md), largest (the biggest file), "
            "db1 (keep all of A), db2 (keep all of B).",
        ),
    ] = DEFAULT_KEEP,
    prefer: PreferOpt = None,
    pairs: PairsOpt = "keep",
    model: ModelOpt = DEFAULT_MODEL,
    embedding_type: EmbeddingTypeOpt = None,
    threshold: ThresholdOpt = None,
    action: ActionOpt = "report",
    merge_metadata: MergeOpt = None,
    to: ToOpt = None,
    yes: YesOpt = False,
    html: HtmlOpt = None,
    review: ReviewOpt = "auto",
    hash_missing: Annotated[
        bool,
        typer.Option(
            "--hash/--no-hash",
            help="Hash files missing from either database first (default); --no-hash "
            "requires both databases to be complete.",
        ),
    ] = True,
    verify: Annotated[
        bool,
        typer.Option(
            "--verify/--no-verify",
            help="Confirm each pair by bytes, pixels and geometry (default).",
        ),
    ] = True,
    geometric: GeometricOpt = True,
    index: IndexOpt = "auto",
    db_a: Annotated[
        Path | None, typer.Option("--db-a", metavar="FILE", help="Database of A (default: in A).")
    ] = None,
    db_b: Annotated[
        Path | None, typer.Option("--db-b", metavar="FILE", help="Database of B (default: in B).")
    ] = None,
    batch_size: BatchOpt = DEFAULT_BATCH_SIZE,
    workers: WorkersOpt = None,
    device: DeviceOpt = "auto",
    weights: WeightsOpt = None,
    include_hidden: HiddenOpt = False,
    exclude: ExcludeOpt = None,
    engine: EngineOpt = "local",
    ray_address: RayAddressOpt = None,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Find duplicates between folders A and B only (never within one); act on copies."""
    with handle_errors():
        from dedup_cli.core.keep import CROSS_RULES, check_keep
        from dedup_cli.core.sets import check_pairs
        from dedup_cli.jobs.cross import cross_find
        from dedup_cli.jobs.workflow import (
            check_separate_databases,
            check_separate_folders,
            validate_threshold,
        )
        from dedup_cli.models import get_spec
        from dedup_cli.store.database import default_db_path

        check_action(action, to, review, html, [folder_a, folder_b], merge_metadata)
        check_keep(keep, CROSS_RULES)
        order = preferred_formats(prefer, keep)
        check_pairs(pairs)
        if threshold is not None:
            validate_threshold(threshold)
        check_separate_folders([folder_a, folder_b])
        check_separate_databases(
            [db_a or default_db_path(folder_a), db_b or default_db_path(folder_b)]
        )
        spec = get_spec(model, embedding_type)
        options = embed_options(
            device, weights, batch_size, workers, include_hidden, exclude, engine, ray_address
        )
        silent = json_output or quiet
        with (
            open_store(folder_a, db_a) as store_a,
            open_store(folder_b, db_b) as store_b,
            planning_lock(action, [folder_a, folder_b]),
        ):
            result = cross_find(
                folder_a,
                store_a,
                folder_b,
                store_b,
                spec,
                options,
                threshold=threshold,
                keep=keep,
                prefer=order,
                pairs=pairs,
                hash_missing=hash_missing,
                verify=verify,
                geometric=geometric,
                index=index,
                progress=RichProgress("hashing", silent),
            )
            document: dict[str, Any] = result.as_dict()
            document["root_a"] = str(folder_a.resolve())
            document["root_b"] = str(folder_b.resolve())
            if not silent:
                _print_summary(result)
            # The journal of a cross run lives in A's database.
            end_with_plan(
                result.plan,
                [store_a, store_b],
                document,
                "dedup cross",
                ActingChoices(action, to, yes, review, html, merge_metadata),
                silent=silent,
                json_output=json_output,
            )


def _print_summary(result: Any) -> None:
    plan = result.plan
    print_plan(plan, result.related)
    table = Table(title=f"dedup cross · {plan.model} · {plan.keep_strategy}", show_header=False)
    table.add_row("only in A", str(result.only_a))
    table.add_row("only in B", str(result.only_b))
    table.add_row("in both (A / B files)", f"{result.in_both_a} / {result.in_both_b}")
    table.add_row("files to remove", str(plan.files_to_remove))
    table.add_row("space to free", human_bytes(plan.bytes_to_free))
    table.add_row("look-alikes not confirmed", str(result.unconfirmed_pairs))
    if result.related:
        table.add_row("related pairs (kept, listed above)", str(len(result.related)))
    out_console.print(table)
