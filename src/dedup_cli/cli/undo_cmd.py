"""``dedup undo``: put the files of a ``--action move`` run back."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dedup_cli.cli.common import DebugOpt, JsonOpt, handle_errors, print_json
from dedup_cli.cli.render import out_console
from dedup_cli.text import markup


def undo_command(
    run_id: Annotated[
        str | None,
        typer.Argument(
            metavar="RUN_ID",
            help="The run to undo (default: the last run of this folder's database).",
            show_default=False,
        ),
    ] = None,
    db: Annotated[
        Path | None,
        typer.Option(
            "--db", metavar="FILE", help="Database of the run (default: found from the run id)."
        ),
    ] = None,
    list_runs: Annotated[
        bool, typer.Option("--list", help="List your recorded runs and what undo can do.")
    ] = False,
    json_output: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Undo a run: moved files go back to where they were. Without RUN_ID, the last run of
    the database in the current folder (or --db)."""
    with handle_errors():
        from dedup_cli.act.execute import database_to_undo, undo_run
        from dedup_cli.act.runs_index import find_database
        from dedup_cli.errors import NothingToUndoError
        from dedup_cli.store import Store

        if list_runs:
            _print_runs(json_output)
            return
        database = db or (find_database(run_id) if run_id else database_to_undo(Path.cwd()))
        if database is None or not database.exists():
            raise NothingToUndoError(
                "no dedup database in this folder and no run recorded on it; pass RUN_ID "
                "(see dedup undo --list) or --db PATH"
                if run_id is None
                else f"run {run_id} not found; pass --db PATH to its database"
            )
        with Store(database) as store:
            report = undo_run(store, run_id)
        if json_output:
            print_json(report.as_dict())
        else:
            out_console.print(
                f"run {report.run_id}: {len(report.restored)} file(s) restored", highlight=False
            )
            for kind, items in (("not restored", report.skipped), ("failed", report.failed)):
                for item in items:
                    out_console.print(
                        f"  [yellow]{kind}[/yellow] {markup(item['path'])}: {markup(item['reason'])}",
                        highlight=False,
                    )
        if report.interrupted:
            from dedup_cli.cli.acting import ActionInterrupted

            raise ActionInterrupted(
                f"interrupted: {len(report.restored)} file(s) restored; run "
                f"dedup undo {report.run_id} again to restore the rest"
            )
        if report.failed or report.skipped:
            from dedup_cli.errors import IncompleteError

            again = f"; run dedup undo {report.run_id} again after fixing" if report.failed else ""
            raise IncompleteError(
                f"{len(report.skipped)} file(s) not restored and {len(report.failed)} failed "
                f"(reasons above){again}"
            )


def _print_runs(json_output: bool) -> None:
    from dedup_cli.act.execute import list_runs

    runs = list_runs()
    if json_output:
        print_json(runs)
        return
    if not runs:
        out_console.print("no runs recorded", highlight=False)
        return
    for run in runs:
        folders = ", ".join(run["roots"]) or "?"
        out_console.print(
            f"{run['run_id']}  {run['action'] or '?':6s}  {run['state']}  {markup(folders)}",
            highlight=False,
        )
