"""``dedup find``: hash what is missing, find duplicate groups, and optionally act on them."""

from __future__ import annotations

from contextlib import ExitStack
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
    DbOpt,
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
    RootsArg,
    ThresholdOpt,
    WeightsOpt,
    WorkersOpt,
    check_folders,
    embed_options,
    handle_errors,
    open_store,
    preferred_formats,
)
from dedup_cli.cli.render import out_console, print_bursts, print_came_back, print_plan
from dedup_cli.config import BURSTS, DEFAULT_BATCH_SIZE, DEFAULT_KEEP, DEFAULT_MODEL, choices
from dedup_cli.core.keep import FIND_RULES
from dedup_cli.text import markup
from dedup_cli.units import human_bytes


def find_command(
    roots: RootsArg,
    model: ModelOpt = DEFAULT_MODEL,
    embedding_type: EmbeddingTypeOpt = None,
    threshold: ThresholdOpt = None,
    keep: Annotated[
        str,
        typer.Option(
            "--keep",
            metavar=choices(FIND_RULES),
            help="Which file stays: quality (the best copy: most pixels, not a conversion, "
            "richer metadata, larger; see docs/keep.md), largest, resolution, oldest, newest, "
            "shortest-path.",
        ),
    ] = DEFAULT_KEEP,
    prefer: PreferOpt = None,
    pairs: PairsOpt = "keep",
    on_bursts: Annotated[
        str | None,
        typer.Option(
            "--bursts",
            metavar=choices(BURSTS),
            help="list (also --bursts alone): also list bursts (shots by one camera seconds "
            "apart), sharpest frame marked; reads every file's EXIF. Bursts are never "
            "removed unless asked: remove-all-but-best also plans every frame but the "
            "sharpest for removal.",
            show_default=False,
        ),
    ] = None,
    action: ActionOpt = "report",
    merge_metadata: MergeOpt = None,
    to: ToOpt = None,
    yes: YesOpt = False,
    html: HtmlOpt = None,
    review: ReviewOpt = "auto",
    verify: Annotated[
        bool,
        typer.Option(
            "--verify/--no-verify",
            help="Confirm each near-duplicate pair at the pixel level (--no-verify trusts the "
            "embedding alone and may remove look-alikes).",
        ),
    ] = True,
    geometric: GeometricOpt = True,
    index: IndexOpt = "auto",
    new_only: Annotated[
        bool,
        typer.Option(
            "--new-only",
            help="Compare only the files added or changed since the last find against the "
            "whole collection (pairs among older files are not looked at again).",
        ),
    ] = False,
    db: DbOpt = None,
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
    """Find duplicate groups under ROOT (or across several) and plan what to remove; act
    only with --action."""
    with handle_errors():
        from dedup_cli.core.bursts import check_bursts
        from dedup_cli.core.keep import FIND_RULES, check_keep
        from dedup_cli.core.sets import check_pairs
        from dedup_cli.jobs.find import Folder, find_in_folders
        from dedup_cli.jobs.workflow import validate_threshold
        from dedup_cli.models import get_spec

        check_folders(roots, db)
        check_action(action, to, review, html, roots, merge_metadata)
        check_keep(keep, FIND_RULES)
        order = preferred_formats(prefer, keep)
        check_pairs(pairs)
        check_bursts(on_bursts)
        if threshold is not None:
            validate_threshold(threshold)
        spec = get_spec(model, embedding_type)
        options = embed_options(
            device, weights, batch_size, workers, include_hidden, exclude, engine, ray_address
        )
        with ExitStack() as held:
            stores = [held.enter_context(open_store(root, db)) for root in roots]
            held.enter_context(planning_lock(action, roots))
            result = find_in_folders(
                [Folder(root, store) for root, store in zip(roots, stores)],
                spec,
                options,
                threshold=threshold,
                keep=keep,
                prefer=order,
                pairs=pairs,
                on_bursts=on_bursts,
                verify=verify,
                geometric=geometric,
                index=index,
                new_only=new_only,
                progress=RichProgress("hashing", quiet or json_output),
            )
            document: dict[str, Any] = result.as_dict()
            if not json_output and not quiet:
                print_find_summary(result)
            end_with_plan(
                result.plan,
                stores,
                document,
                "dedup find",
                ActingChoices(action, to, yes, review, html, merge_metadata),
                silent=json_output or quiet,
                json_output=json_output,
            )


def print_find_summary(result: Any) -> None:
    plan = result.plan
    print_plan(plan, result.related)
    print_came_back(result.came_back)
    print_bursts(result.bursts)
    table = Table(
        title=f"dedup find · {plan.model} · threshold {plan.threshold:.3f}", show_header=False
    )
    table.add_row("files compared", str(result.files_compared))
    if result.new_files is not None:
        table.add_row("new since the last find", str(result.new_files))
    if result.index_file is not None:
        kept = result.index_file
        state = f"{kept['status']}, {kept['assigned']} assigned, {kept['removed']} removed"
        if not kept["saved"]:
            state += f" ({kept['reason']})"
        table.add_row("approximate search cells", markup(state))
    table.add_row("embedded now", str(result.hashing.embedded))
    table.add_row("unreadable", str(len(result.unreadable)))
    table.add_row("duplicate groups", str(len(plan.groups)))
    table.add_row("files to remove", str(plan.files_to_remove))
    table.add_row("space to free", human_bytes(plan.bytes_to_free))
    proofs = result.proofs
    checks = (
        f"{proofs.get('thumbnails', 0)} thumbnail, {proofs.get('pixels', 0)} pixel, "
        f"{proofs.get('keypoints', 0)} keypoint ({result.proof_seconds:.1f} s)"
    )
    table.add_row("candidate pairs", str(result.candidate_pairs))
    table.add_row("checks run", checks)
    if result.confirmed_by:
        how = ", ".join(f"{n} by {m}" for m, n in sorted(result.confirmed_by.items()))
        table.add_row("pairs confirmed", how)
    table.add_row("look-alikes not confirmed", str(result.unconfirmed_pairs))
    if result.related:
        table.add_row("related pairs (kept, listed above)", str(len(result.related)))
    if result.came_back:
        table.add_row("came back after removal (listed above)", str(len(result.came_back)))
    out_console.print(table)
