"""Carrying out a plan from the CLI, shared by find, filename-clean (and cross): the options,
the confirmation rule, the journal entry in the runs index, and the summary."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from dedup_cli.cli.common import check_parent_exists, err_console, print_json
from dedup_cli.cli.render import out_console, print_plan
from dedup_cli.config import ACTIONS, REVIEWS, choices
from dedup_cli.errors import DedupError, IncompleteError, UsageError
from dedup_cli.text import markup
from dedup_cli.units import human_bytes

ActionOpt = Annotated[
    str,
    typer.Option(
        "--action",
        metavar=choices(("report", *ACTIONS)),
        help="report (change nothing), trash, move (needs --to) or delete.",
    ),
]
ToOpt = Annotated[
    Path | None,
    typer.Option(
        "--to",
        metavar="DIR",
        help="Quarantine folder for --action move (outside the photo folder).",
    ),
]
HtmlOpt = Annotated[
    Path | None,
    typer.Option(
        "--html",
        metavar="FILE",
        help="Also write a self-contained HTML report of the plan to FILE.",
    ),
]
ReviewOpt = Annotated[
    str,
    typer.Option(
        "--review",
        metavar=choices(REVIEWS),
        help="terminal (gallery), gui (matplotlib window), web (the browser; only accepted "
        "groups come back), html (write the report), none, or "
        "auto: terminal when an action is asked for on a terminal, none otherwise.",
    ),
]
YesOpt = Annotated[
    bool, typer.Option("--yes", "-y", help="Act without asking (for cron and scripts).")
]


class ActionInterrupted(DedupError):
    """Ctrl-C during an action: stopped cleanly between two files."""

    exit_code = 130


class NotConfirmedError(DedupError):
    """An action was asked for, but nobody confirmed it."""


class IncompleteActionError(IncompleteError):
    """Some planned files were skipped by a safety check or failed: each has its reason."""


@contextmanager
def planning_lock(action: str, roots: list[Path]) -> Iterator[None]:
    """Planning and acting on a folder is one critical section: with an action, hold the
    folders from before the plan is made until the action ends (``locking.acting_on``), so
    two runs never plan on the same files and both act."""
    if action == "report":
        yield
        return
    from dedup_cli.act.locking import acting_on

    with acting_on([r.resolve() for r in roots]):
        yield


def review_plan(
    plan: Any,
    review: str,
    action: str,
    html_path: Path | None,
    document: dict[str, Any],
    title: str,
    silent: bool,
    stores: Sequence[Any] = (),
) -> Any:
    """Let the user review the plan; returns the reviewed plan (empty when cancelled).

    Groups marked "not duplicates" ride on the reviewed plan (``Plan.not_duplicates``). In
    the browser (``web``) only the groups the reviewer accepted come back, and the page
    hands back to the terminal with "Finish review" (Ctrl-C cancels)."""
    if review == "auto":
        interactive = sys.stdin.isatty() and sys.stdout.isatty()
        review = "terminal" if action != "report" and interactive else "none"
    if review == "html":
        write_report(plan, html_path or Path("dedup-report.html"), document, title, silent)
        return plan
    if review not in ("terminal", "gui", "web") or not plan.groups:
        return plan
    from dedup_cli.review.session import ReviewSession

    only_accepted = False
    if review == "web":
        from dedup_cli.cli.review_cmd import serve_plan

        session = serve_plan(
            plan, stores, allow_delete=False, port=0, open_browser=True, returns_to_terminal=True
        )
        session.cancelled = not session.finished
        only_accepted = True
    elif review == "gui":
        from dedup_cli.review.gui import review_with_matplotlib

        session = review_with_matplotlib(ReviewSession(plan))
    else:
        from dedup_cli.review.terminal import review_in_terminal

        session = review_in_terminal(ReviewSession(plan))
    # The decisions travel on the reviewed plan; ``act.carry_out`` remembers them.
    document["review"] = {"cancelled": session.cancelled, "not_duplicates_remembered": 0}
    if session.cancelled and not silent:
        err_console.print("review cancelled: nothing will be removed", highlight=False)
    reviewed = session.result(only_accepted=only_accepted)
    if not session.cancelled and action != "report" and not silent:
        # What is confirmed next is this plan, not the one listed before the review.
        out_console.print("[bold]the reviewed plan[/bold] (what will be done):", highlight=False)
        print_plan(reviewed)
        if not reviewed.groups:
            out_console.print("  nothing left to remove", highlight=False)
    return reviewed


def check_action(
    action: str,
    to: Path | None,
    review: str = "auto",
    html: Path | None = None,
    roots: list[Path] | None = None,
    merge_metadata: str | None = None,
) -> None:
    """Bad choices stop before any work (no model loaded, nothing hashed): the action and
    its quarantine (never inside a scanned folder, never without ``--action move``), the
    report path (it must not replace a photo or any file that is not an earlier dedup
    report, and its folder must exist), and where metadata is merged (its library there)."""
    if merge_metadata is not None:
        from dedup_cli.act.execute import check_merge_mode

        check_merge_mode(merge_metadata)
    if html is not None or review == "html":
        from dedup_cli.review.html import check_report_path

        report = check_report_path(html or Path("dedup-report.html"))
        check_parent_exists("--html", report)
    if review not in REVIEWS:
        raise UsageError(f"--review must be one of {', '.join(REVIEWS)}, not {review!r}")
    if action not in ("report", *ACTIONS):
        raise UsageError(f"--action must be report, {', '.join(ACTIONS)}, not {action!r}")
    if action == "move" and to is None:
        raise UsageError("--action move needs --to DIR")
    if to is not None and action != "move":
        raise UsageError("--to is only for --action move (a quarantine folder to move copies to)")
    if to is not None:
        from dedup_cli.act.execute import checked_quarantine

        checked_quarantine(to, roots or [])


def confirm(action: str, count: int, size: int, yes: bool) -> None:
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


def write_report(
    plan: Any, html_path: Path | None, document: dict[str, Any], title: str, silent: bool
) -> None:
    """Write the HTML report when asked; its path goes into the JSON document."""
    if html_path is None:
        return
    from dedup_cli.review.html import write_html

    try:
        written = write_html(plan, html_path, title)
    except OSError as exc:
        raise DedupError(
            f"cannot write the HTML report {html_path}: {exc.strerror or exc}"
        ) from exc
    document["html"] = str(written)
    if not silent:
        err_console.print(f"report written to {markup(written)}", highlight=False)


@dataclass
class ActingChoices:
    """The options every planning command shares for what happens to its plan."""

    action: str = "report"
    to: Path | None = None
    yes: bool = False
    review: str = "auto"
    html: Path | None = None
    merge_metadata: str | None = None  # --merge-metadata: file, sidecar or off


def end_with_plan(
    plan: Any,
    stores: Sequence[Any],
    document: dict[str, Any],
    title: str,
    choices: ActingChoices,
    *,
    silent: bool,
    json_output: bool,
) -> None:
    """The one ending of ``find``, ``cross`` and ``filename-clean``: report, review,
    confirm, carry out (``act.carry_out``; the journal goes into the first of ``stores``,
    the databases of the plan's folders), print the JSON document, and turn an incomplete
    action into its exit code."""
    from dedup_cli.act.execute import carry_out

    write_report(plan, choices.html, document, title, silent)
    reviewed = review_plan(
        plan, choices.review, choices.action, choices.html, document, title, silent, stores
    )
    document["action"] = None

    def ask(chosen: Any) -> None:
        confirm(choices.action, chosen.files_to_remove, chosen.bytes_to_free, choices.yes)

    try:
        outcome = carry_out(
            reviewed,
            stores[0],
            choices.action,
            move_to=choices.to,
            confirm=ask,
            remember_in=stores[1:],
            merge_metadata=choices.merge_metadata,
        )
    except NotConfirmedError:
        if json_output:  # a script still gets the plan that was not carried out
            print_json(document)
        raise
    if "review" in document:
        document["review"]["not_duplicates_remembered"] = outcome.not_duplicates_remembered
    if outcome.report is not None:
        document["action"] = outcome.report.as_dict()
        document["run_id"] = outcome.report.run_id
        if not silent:
            print_action_summary(outcome.report)
    elif choices.action == "report" and reviewed.files_to_remove and not silent:
        err_console.print(
            "nothing was changed; to act, add --action trash, --action move --to DIR "
            "or --action delete",
            highlight=False,
        )
    if json_output:
        print_json(document)
    raise_if_interrupted(document)


def raise_if_interrupted(document: dict[str, Any]) -> None:
    """After the JSON document is out: a Ctrl-C during the action ends with exit code 130;
    files skipped by a safety check or failed end with exit code 1."""
    outcome = document.get("action") or {}
    if outcome.get("interrupted"):
        undo = f"; undo with: dedup undo {outcome['run_id']}" if outcome["action"] == "move" else ""
        raise ActionInterrupted(
            f"interrupted: {len(outcome['done'])} file(s) done and journaled, the rest "
            f"untouched{undo}"
        )
    skipped, failed = len(outcome.get("skipped") or ()), len(outcome.get("failed") or ())
    if skipped or failed:
        raise IncompleteActionError(
            f"{skipped} file(s) skipped by a safety check and {failed} failed; they were left "
            "in place (reasons above, or under action.skipped / action.failed in --json)"
        )


def print_action_summary(outcome: Any) -> None:
    out_console.print(
        f"run {outcome.run_id}: {outcome.action} {len(outcome.done)} file(s), "
        f"{human_bytes(outcome.bytes_freed)}; {len(outcome.skipped)} skipped, "
        f"{len(outcome.failed)} failed; journal {markup(outcome.manifest)}",
        highlight=False,
    )
    # Every file left in place is named with its reason: it is what the user must look at.
    for kind, items in (("skipped", outcome.skipped), ("failed", outcome.failed)):
        for item in items:
            out_console.print(
                f"  [yellow]{kind}[/yellow] {markup(item['path'])}: {markup(item['reason'])}",
                highlight=False,
            )
    if outcome.action == "move":
        out_console.print(f"undo with: dedup undo {outcome.run_id}", highlight=False)
