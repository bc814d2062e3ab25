"""How results look in a terminal: one listing of a plan for find, cross and filename-clean.

Results (the groups, the summaries, the tables) go to stdout, so ``dedup find photos >
report.txt`` and ``| less`` carry them; progress, prompts and diagnostics go to stderr
(``common.err_console``), and with ``--json`` stdout holds the JSON document alone."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from dedup_cli.text import markup
from dedup_cli.units import human_bytes

out_console = Console(soft_wrap=True)
GROUPS_SHOWN = 50


def _facts(f: Any) -> str:
    size = human_bytes(f.size)
    return f"{size}, {f.width}x{f.height}" if f.width and f.height else size


def print_plan(plan: Any, related: list[dict[str, Any]] | None = None) -> None:
    """The groups of a plan: the keeper (and why it won), then each file to remove with how
    it was proved; then the related pairs, which are never removed. Files are named as the
    plan shows them (``Plan.shown``: in full when it spans several folders)."""

    def name(f: Any) -> str:
        return markup(plan.shown(f))

    for number, group in enumerate(plan.groups[:GROUPS_SHOWN], start=1):
        out_console.print(f"[bold]group {number}[/bold]", highlight=False)
        why = f"; kept: {markup(group.why)}" if getattr(group, "why", "") else ""
        out_console.print(
            f"  [green]keep  [/green] {name(group.keep)} ({_facts(group.keep)}){why}",
            highlight=False,
        )
        for removal in group.remove:
            f = removal.file
            similarity = f"similarity {removal.similarity:.3f}, " if removal.similarity else ""
            out_console.print(
                f"  [red]remove[/red] {name(f)} ({_facts(f)}, {similarity}{removal.method})",
                highlight=False,
            )
            going = getattr(plan, "followers", {}).get(str(f.absolute), [])
            if going:
                out_console.print(
                    "         with "
                    + ", ".join(f"its {markup(g.what)} {markup(g.name)}" for g in going),
                    highlight=False,
                )
    if len(plan.groups) > GROUPS_SHOWN:
        out_console.print(
            f"… and {len(plan.groups) - GROUPS_SHOWN} more groups (see --json or --html)"
        )
    if related:
        print_related(related)
    held = getattr(plan, "held_back", [])
    if held:
        out_console.print(
            f"[bold]held back[/bold] ({len(held)}), kept with their set or as other shots: a "
            "RAW and its JPEG or HEIC, a Live Photo's still and movie stay together (--pairs "
            "ignore plans them alone); a burst's frames are not copies",
            highlight=False,
        )
        for item in held[:GROUPS_SHOWN]:
            out_console.print(
                f"  {markup(item['path'])}: {markup(item['reason'])}", highlight=False
            )
        if len(held) > GROUPS_SHOWN:
            out_console.print(f"  … and {len(held) - GROUPS_SHOWN} more (see --json)")


def print_related(related: list[dict[str, Any]]) -> None:
    """Pairs where one picture is an edit of the other (an overlay, a caption) or shares
    its frame: shown so the user can look, never planned for removal."""
    out_console.print(
        f"[bold]related, kept[/bold] ({len(related)}): one is an edit of the other or they "
        "share a frame; nothing is removed",
        highlight=False,
    )
    for pair in related[:GROUPS_SHOWN]:
        out_console.print(f"  {markup(pair['a'])}  ~  {markup(pair['b'])}", highlight=False)
    if len(related) > GROUPS_SHOWN:
        out_console.print(f"  … and {len(related) - GROUPS_SHOWN} more (see --json)")


def print_came_back(came_back: list[dict[str, Any]]) -> None:
    """Files whose content a dedup run removed before (a backup that uploaded deleted
    copies again): named with the run that removed it."""
    if not came_back:
        return
    out_console.print(
        f"[bold]came back[/bold] ({len(came_back)}): content a dedup run removed before",
        highlight=False,
    )
    for item in came_back[:GROUPS_SHOWN]:
        out_console.print(
            f"  {markup(item['path'])}: removed by run {markup(item['run_id'])} "
            f"({markup(item['action'])} of {markup(item['removed'])})",
            highlight=False,
        )
    if len(came_back) > GROUPS_SHOWN:
        out_console.print(f"  … and {len(came_back) - GROUPS_SHOWN} more (see --json)")


def print_bursts(listed: list[dict[str, Any]] | None) -> None:
    """``find --bursts``: each burst with its frames, the sharpest marked."""
    if listed is None:
        return
    out_console.print(
        f"[bold]bursts[/bold] ({len(listed)}): shots by one camera seconds apart; removed "
        "only with --bursts remove-all-but-best (then planned above, the sharpest kept)",
        highlight=False,
    )
    for burst in listed[:GROUPS_SHOWN]:
        left = f"; {markup(burst['left'])}" if burst.get("left") else ""
        out_console.print(
            f"  {markup(burst['camera'])}, {len(burst['frames'])} frames{left}", highlight=False
        )
        for frame in burst["frames"]:
            mark = "[green]sharpest[/green] " if frame["path"] == burst["sharpest"] else ""
            out_console.print(
                f"    {mark}{markup(frame['path'])} (sharpness {frame['sharpness']})",
                highlight=False,
            )
    if len(listed) > GROUPS_SHOWN:
        out_console.print(f"  … and {len(listed) - GROUPS_SHOWN} more (see --json)")
