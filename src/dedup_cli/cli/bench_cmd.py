"""``dedup bench``: measure precision and recall on a sample of your own photos."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from dedup_cli.cli.common import (
    DebugOpt,
    DeviceOpt,
    JsonOpt,
    RichProgress,
    RootArg,
    WorkersOpt,
    err_console,
    handle_errors,
    print_json,
)
from dedup_cli.text import markup


def bench_command(
    root: RootArg,
    sample: Annotated[
        int, typer.Option("--sample", metavar="N", min=1, help="Photos to sample.")
    ] = 200,
    models: Annotated[
        str, typer.Option("--models", metavar="NAMES", help="Comma-separated models to measure.")
    ] = "effnet",
    target_precision: Annotated[
        float,
        typer.Option(
            "--target-precision",
            min=0.0,
            max=1.0,
            help="Precision the suggested threshold must reach (easy tier).",
        ),
    ] = 0.99,
    seed: Annotated[
        int, typer.Option("--seed", metavar="N", help="Sampling seed (same seed, same sample).")
    ] = 0,
    plot: Annotated[
        Path | None,
        typer.Option("--plot", metavar="FILE", help="Write a precision/recall PNG here."),
    ] = None,
    line_art: Annotated[
        bool,
        typer.Option(
            "--line-art/--no-line-art",
            help="Also measure the line-art family (text pages, scans, binary images, "
            "drawings made offline), with its own recall, found recall and precision.",
        ),
    ] = True,
    workers: WorkersOpt = None,
    device: DeviceOpt = "auto",
    json_output: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Measure precision/recall on transformed copies of your photos (ROOT is never written)."""
    with handle_errors():
        from dedup_cli.embed.pipeline import EmbedOptions
        from dedup_cli.jobs.bench import build_corpus, evaluate
        from dedup_cli.jobs.bench import plot as draw_plot
        from dedup_cli.models import check_device_choice, get_spec

        specs = [get_spec(name.strip()) for name in models.split(",") if name.strip()]
        options = EmbedOptions(device=check_device_choice(device), workers=workers)
        results = []
        with tempfile.TemporaryDirectory(prefix="dedup-bench-") as tmp:
            corpus = Path(tmp) / "corpus"
            corpus.mkdir()
            progress = RichProgress("bench", json_output)
            samples, unreadable = build_corpus(
                root.resolve(), corpus, sample, seed, progress, line_art=line_art
            )
            if not json_output:
                err_console.print(
                    f"bench corpus: {sum(s.family == 'original' for s in samples)} photos, "
                    f"{len(samples)} files ({unreadable} unreadable photos skipped)",
                    highlight=False,
                )
            for spec in specs:
                results.append(
                    evaluate(
                        corpus,
                        samples,
                        spec,
                        options,
                        Path(tmp),
                        target_precision,
                        progress=progress,
                    )
                )
        document: dict[str, Any] = {
            "root": str(root.resolve()),
            "sample": sample,
            "seed": seed,
            "models": [r.as_dict() for r in results],
        }
        if plot is not None:
            document["plot"] = str(draw_plot(results, plot))
        if json_output:
            print_json(document)
            return
        console = Console()
        for bench in results:
            _print_model(console, bench)
        if plot is not None:
            err_console.print(f"plot written to {markup(plot)}", highlight=False)


def _print_model(console: Console, bench: Any) -> None:
    table = Table(
        title=f"{bench.model}: {bench.photos} photos, {bench.files} files, "
        f"{bench.images_per_second:.1f} images/s hashing"
    )
    columns = ("threshold", "easy P", "easy R", "easy F1", "hard P", "hard R", "hard F1")
    for column in (*columns, "look-alikes grouped"):
        table.add_column(column, justify="right")
    for t, scores in sorted(bench.by_threshold.items()):
        marks = []
        if t == bench.default_threshold:
            marks.append("default")
        if t == bench.chosen_threshold:
            marks.append("suggested")
        label = f"{t:.2f}" + (f" ({', '.join(marks)})" if marks else "")
        e, h = scores["easy"], scores["hard"]
        table.add_row(
            label,
            f"{e.precision:.3f}",
            f"{e.recall:.3f}",
            f"{e.f1:.3f}",
            f"{h.precision:.3f}",
            f"{h.recall:.3f}",
            f"{h.f1:.3f}",
            str(scores["all"].lookalike_pairs),
        )
    console.print(table)
    t = bench.chosen_threshold or bench.default_threshold
    drawn = bench.by_threshold.get(t, {}).get("lineart")
    if drawn is not None:
        console.print(
            f"line art (text pages, scans, drawings) at {t:.2f}: recall {drawn.recall:.3f}, "
            f"found incl. related {drawn.recall_with_related:.3f}, precision "
            f"{drawn.precision:.3f}",
            highlight=False,
        )
    families = Table(title=f"{bench.model}: recall per transform at threshold {t:.2f}")
    families.add_column("transform")
    families.add_column("recall", justify="right")
    families.add_column("precision", justify="right")
    families.add_column("found incl. related", justify="right")
    for family, scores in bench.by_family[t].items():
        families.add_row(
            family,
            f"{scores.recall:.3f}",
            f"{scores.precision:.3f}",
            f"{scores.recall_with_related:.3f}",
        )
    console.print(families)
    if bench.confirmed_by:
        how = ", ".join(f"{n} by {m}" for m, n in sorted(bench.confirmed_by.items()))
        console.print(f"pairs confirmed at the default threshold: {how}")
    if bench.chosen_threshold is None:
        console.print(f"no threshold reaches precision {bench.target_precision} on the easy tier")
    else:
        console.print(
            f"suggested: dedup find ROOT --model {bench.model} "
            f"--threshold {bench.chosen_threshold:.2f}"
        )
