"""``dedup find``: hash what is missing, find duplicate groups, and optionally act on them."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from dedup_cli.cli.common import (
    BatchOpt,
    DbOpt,
    DeviceOpt,
    EmbeddingTypeOpt,
    HiddenOpt,
    JsonOpt,
    ModelOpt,
    QuietOpt,
    RichProgress,
    RootArg,
    WeightsOpt,
    WorkersOpt,
    err_console,
    handle_errors,
    human_bytes,
    open_store,
    print_json,
)
from dedup_cli.config import DEFAULT_BATCH_SIZE, DEFAULT_KEEP, DEFAULT_MODEL
from dedup_cli.errors import DedupError, UsageError


class NotConfirmedError(DedupError):
    """An action was asked for, but nobody confirmed it."""


def find_command(
    root: RootArg,
    model: ModelOpt = DEFAULT_MODEL,
    embedding_type: EmbeddingTypeOpt = None,
    threshold: Annotated[
        float | None,
        typer.Option(
            "--threshold",
            "-t",
            help="Cosine similarity 0..1 (default: the model's calibrated one).",
            show_default=False,
        ),
    ] = None,
    keep: Annotated[
        str,
        typer.Option(
            "--keep", help="Which file stays: largest, resolution, oldest, newest, shortest-path."
        ),
    ] = DEFAULT_KEEP,
    action: Annotated[
        str,
        typer.Option(
            "--action", help="report (change nothing), trash, move (needs --to) or delete."
        ),
    ] = "report",
    to: Annotated[
        Path | None,
        typer.Option(
            "--to", help="Quarantine folder for --action move (outside the photo folder)."
        ),
    ] = None,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Act without asking (for cron and scripts).")
    ] = False,
    verify: Annotated[
        bool,
        typer.Option(
            "--verify/--no-verify",
            help="Confirm each near-duplicate pair at the pixel level (--no-verify trusts the "
            "embedding alone and may remove look-alikes).",
        ),
    ] = True,
    db: DbOpt = None,
    batch_size: BatchOpt = DEFAULT_BATCH_SIZE,
    workers: WorkersOpt = None,
    device: DeviceOpt = "auto",
    weights: WeightsOpt = None,
    include_hidden: HiddenOpt = False,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Find duplicate groups under ROOT and plan what to remove; act only with --action."""
    with handle_errors():
        from dedup_cli.act import ACTIONS, execute_plan
        from dedup_cli.models import get_spec, resolve_device
        from dedup_cli.plan import KEEP_STRATEGIES
        from dedup_cli.runs_index import record_run
        from dedup_cli.service import HashOptions, find_duplicates, validate_threshold

        if action not in ("report", *ACTIONS):
            raise UsageError(f"--action must be report, {', '.join(ACTIONS)}, not {action!r}")
        if keep not in KEEP_STRATEGIES:
            raise UsageError(f"--keep must be one of {', '.join(KEEP_STRATEGIES)}, not {keep!r}")
        if action == "move" and to is None:
            raise UsageError("--action move needs --to DIR")
        if threshold is not None:
            validate_threshold(threshold)
        spec = get_spec(model, embedding_type)
        options = HashOptions(
            device=resolve_device(device),
            weights=weights,
            batch_size=batch_size,
            workers=workers,
            include_hidden=include_hidden,
        )
        with open_store(root, db) as store:
            result = find_duplicates(
                root,
                store,
                spec,
                options,
                threshold=threshold,
                keep=keep,
                verify=verify,
                progress=RichProgress("hashing", quiet or json_output),
            )
            document: dict[str, Any] = result.as_dict()
            document["action"] = None
            if not json_output and not quiet:
                print_find_summary(result)
            plan = result.plan
            if action != "report" and plan.files_to_remove:
                _confirm(action, plan.files_to_remove, plan.bytes_to_free, yes)
                outcome = execute_plan(plan, store, action, move_to=to)
                record_run(outcome.run_id, store.path)
                document["action"] = outcome.as_dict()
                document["run_id"] = outcome.run_id
                if not json_output and not quiet:
                    print_action_summary(outcome)
            elif action == "report" and plan.files_to_remove and not json_output and not quiet:
                err_console.print(
                    "nothing was changed; to act, add --action trash, --action move --to DIR "
                    "or --action delete",
                    highlight=False,
                )
        if json_output:
            print_json(document)


def _confirm(action: str, count: int, size: int, yes: bool) -> None:
    """Ask on a terminal; without one, act only with --yes."""
    if yes:
        return
    verb = {
        "trash": "Send to the trash",
        "move": "Move to quarantine",
        "delete": "Delete permanently",
    }[action]
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise NotConfirmedError(
            f"nothing removed: {count} file(s) planned for {action}, but there is no terminal "
            "to confirm on; pass --yes to act unattended"
        )
    if not typer.confirm(f"{verb} {count} file(s), {human_bytes(size)}?", default=False, err=True):
        raise NotConfirmedError("nothing removed: not confirmed")


def print_find_summary(result: Any) -> None:
    plan = result.plan
    for number, group in enumerate(plan.groups[:50], start=1):
        err_console.print(f"[bold]group {number}[/bold]", highlight=False)
        err_console.print(
            f"  [green]keep  [/green] {group.keep.path} "
            f"({human_bytes(group.keep.size)}, {group.keep.width}x{group.keep.height})",
            highlight=False,
        )
        for removal in group.remove:
            f = removal.file
            err_console.print(
                f"  [red]remove[/red] {f.path} ({human_bytes(f.size)}, {f.width}x{f.height}, "
                f"similarity {removal.similarity:.3f}, {removal.method})",
                highlight=False,
            )
    if len(plan.groups) > 50:
        err_console.print(f"… and {len(plan.groups) - 50} more groups (see --json)")
    table = Table(
        title=f"dedup find · {plan.model} · threshold {plan.threshold:.3f}", show_header=False
    )
    table.add_row("files compared", str(result.files_compared))
    table.add_row("embedded now", str(result.hashing.embedded))
    table.add_row("unreadable", str(len(result.hashing.failed) + result.hashing.known_bad))
    table.add_row("duplicate groups", str(len(plan.groups)))
    table.add_row("files to remove", str(plan.files_to_remove))
    table.add_row("space to free", human_bytes(plan.bytes_to_free))
    table.add_row("look-alikes not confirmed", str(len(result.unconfirmed)))
    err_console.print(table)


def print_action_summary(outcome: Any) -> None:
    err_console.print(
        f"run {outcome.run_id}: {outcome.action} {len(outcome.done)} file(s), "
        f"{human_bytes(outcome.bytes_freed)}; {len(outcome.skipped)} skipped, "
        f"{len(outcome.failed)} failed; journal {outcome.manifest}",
        highlight=False,
    )
    for item in outcome.skipped[:20]:
        err_console.print(
            f"  [yellow]skipped[/yellow] {item['path']}: {item['reason']}", highlight=False
        )
    if outcome.action == "move":
        err_console.print(f"undo with: dedup undo {outcome.run_id}", highlight=False)
