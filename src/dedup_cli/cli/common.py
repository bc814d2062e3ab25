"""Options, consoles and error handling shared by the commands."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from typer.core import TyperCommand

from dedup_cli.config import DEVICES, ENGINES, INDEXES, MERGE_MODES, OPTIONAL_VALUES, choices
from dedup_cli.core.progress import Progress as ProgressEvents
from dedup_cli.errors import DedupError
from dedup_cli.store import Store, default_db_path
from dedup_cli.text import markup


@dataclass
class _State:
    debug: bool = False


state = _State()
F = TypeVar("F", bound=Callable[..., Any])

# Human output goes to stderr so that stdout carries only the JSON document when asked for.
err_console = Console(stderr=True)

RootArg = Annotated[
    Path, typer.Argument(metavar="ROOT", help="The photo folder.", show_default=False)
]
RootsArg = Annotated[
    list[Path],
    typer.Argument(
        metavar="ROOT...",
        help="The photo folder; several are searched as one collection, within each and "
        "across them (each keeps its own database).",
        show_default=False,
    ),
]
ThresholdOpt = Annotated[
    float | None,
    typer.Option(
        "--threshold",
        "-t",
        metavar="T",
        help="Cosine similarity 0..1 (default: the model's calibrated one).",
        show_default=False,
    ),
]
PreferOpt = Annotated[
    str | None,
    typer.Option(
        "--prefer",
        metavar="FORMATS",
        help="With --keep quality: an order of formats to keep first when copies tie on "
        "pixels and metadata, e.g. raw,heic,jpeg (before the file size).",
        show_default=False,
    ),
]
PairsOpt = Annotated[
    str,
    typer.Option(
        "--pairs",
        metavar="[keep|ignore]",
        help="keep: a RAW and its JPEG or HEIC, a Live Photo's still and movie (same folder "
        "and name) are never split or removed for each other; ignore: plan each file alone.",
    ),
]
MergeOpt = Annotated[
    str | None,
    typer.Option(
        "--merge-metadata",
        metavar=f"[{'|'.join(MERGE_MODES)}]",
        help="Before a copy is removed, copy the fields its keeper lacks (GPS, capture time, "
        "camera, rating, keywords, title, description) into the keeper (file: metadata "
        "blocks only, pixels untouched) or into its XMP sidecar (sidecar); journaled, "
        "undone by dedup undo. --merge-metadata alone means file.",
        show_default=False,
    ),
]
DbOpt = Annotated[
    Path | None,
    typer.Option(
        "--db",
        metavar="FILE",
        help="Database file (default: image_database.db in the photo folder).",
        envvar="DEDUP_DB",
    ),
]
ModelOpt = Annotated[
    str,
    typer.Option(
        "--model",
        "-m",
        metavar="NAME",
        help="Embedding model: effnet, clip-b32, clip-l14, dinov3 (see `dedup models`).",
        envvar="DEDUP_MODEL",
    ),
]
EmbeddingTypeOpt = Annotated[
    str | None,
    typer.Option("--embedding-type", metavar="TYPE", help="CLIP only: final, hidden or both."),
]
BatchOpt = Annotated[
    int, typer.Option("--batch-size", metavar="N", min=1, help="Images per model batch.")
]
WorkersOpt = Annotated[
    int | None,
    typer.Option(
        "--workers",
        metavar="N",
        min=0,
        help="Decode worker processes (default: one per core; 0 decodes inline).",
    ),
]
DeviceOpt = Annotated[
    str, typer.Option("--device", metavar=choices(DEVICES), help="auto, cpu, cuda or mps.")
]
WeightsOpt = Annotated[
    Path | None,
    typer.Option(
        "--weights", metavar="PATH", help="Local weights file or folder, for offline use."
    ),
]
HiddenOpt = Annotated[
    bool, typer.Option("--include-hidden", help="Also scan hidden files and folders.")
]
GeometricOpt = Annotated[
    bool,
    typer.Option(
        "--geometric/--no-geometric",
        help="Also confirm pairs by local features (crops, flips, rotations, overlays); "
        "reads those files again. --no-geometric: exact and pixel checks only.",
    ),
]
IndexOpt = Annotated[
    str,
    typer.Option(
        "--index",
        metavar=choices(INDEXES),
        help="auto (default: exact on a GPU or below 200,000 files, ann otherwise), "
        "exact, or ann (k-means cells, each row against its 64 nearest cells, every pair "
        "re-scored exactly; measured "
        "recall >= 0.99 against exact).",
    ),
]


EngineOpt = Annotated[
    str,
    typer.Option(
        "--engine",
        metavar=choices(ENGINES),
        help="local (default), or ray: hashing, search and proof run on a Ray cluster "
        "(pip install 'dedup-cli[ray]'; every node must see the files at the same path).",
    ),
]
RayAddressOpt = Annotated[
    str | None,
    typer.Option(
        "--ray-address",
        metavar="auto|HOST:PORT",
        envvar="RAY_ADDRESS",
        help="With --engine ray: the cluster to join (auto: the one this machine belongs "
        "to); default: a Ray already running on this machine, else one started for this run.",
    ),
]


def _set_debug(value: bool) -> bool:
    if value:
        state.debug = True
    return value


# Accepted after the command as well as before it (``dedup find X --debug``).
DebugOpt = Annotated[
    bool,
    typer.Option("--debug", help="Show tracebacks for errors.", callback=_set_debug, is_eager=True),
]
ExcludeOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--exclude",
        "-e",
        metavar="GLOB",
        help="Leave out files and folders whose path under the folder, or name, matches "
        "GLOB (repeatable): -e backup -e '*.png' -e '2020/raw'.",
    ),
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or summary.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]


@contextmanager
def handle_errors() -> Iterator[None]:
    """DedupError -> one red line and its exit code; Ctrl-C -> 130; anything else -> 1."""
    try:
        yield
    except typer.Exit:
        raise
    except DedupError as exc:
        if state.debug:
            raise
        err_console.print(f"[red]error:[/red] {markup(exc)}", highlight=False, soft_wrap=True)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        err_console.print(
            "interrupted: finished batches are saved; run the command again to resume",
            highlight=False,
        )
        raise typer.Exit(130) from None
    except Exception as exc:
        if state.debug:
            raise
        err_console.print(
            f"[red]error:[/red] {type(exc).__name__}: {markup(exc)} "
            "(rerun with --debug for the traceback)",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(1) from None


def with_optional_values(args: list[str]) -> list[str]:
    """``args`` with the value of an option given alone filled in (``--bursts`` ->
    ``--bursts list``): the first of its choices, when the next word is not one of them."""
    filled: list[str] = []
    for k, arg in enumerate(args):
        if arg == "--":
            return filled + args[k:]
        filled.append(arg)
        names = OPTIONAL_VALUES.get(arg)
        if names is not None and (k + 1 == len(args) or args[k + 1] not in names):
            filled.append(names[0])
    return filled


class OptionalValues(TyperCommand):
    """A command whose ``OPTIONAL_VALUES`` options may be given without a value, which
    click cannot express: the value is put in before parsing."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return super().parse_args(ctx, with_optional_values(list(args)))


def embed_options(
    device: str,
    weights: Path | None,
    batch_size: int,
    workers: int | None,
    include_hidden: bool,
    exclude: list[str] | None = None,
    engine: str = "local",
    ray_address: str | None = None,
) -> Any:
    """The embedding options every command that embeds shares (the device is checked by
    name here and resolved only where a model or a search runs; ``--engine ray`` checks
    that Ray is installed before any work)."""
    from dedup_cli.embed.pipeline import EmbedOptions
    from dedup_cli.errors import UsageError
    from dedup_cli.models import check_device_choice

    if weights is not None and not weights.expanduser().exists():
        raise UsageError(f"--weights {weights} does not exist")
    if engine not in ENGINES:
        raise UsageError(f"--engine must be one of {', '.join(ENGINES)}, not {engine!r}")
    if engine == "ray":
        from dedup_cli.distributed.runtime import ray_module

        ray_module()
    return EmbedOptions(
        device=check_device_choice(device),
        weights=weights,
        batch_size=batch_size,
        workers=workers,
        include_hidden=include_hidden,
        exclude=tuple(exclude or ()),
        engine=engine,
        ray_address=ray_address if engine == "ray" else None,
    )


def preferred_formats(prefer: str | None, keep: str) -> tuple[str, ...]:
    """``--prefer raw,heic,jpeg`` as an order, checked before any work."""
    from dedup_cli.core.keep import check_prefer

    return check_prefer(tuple((prefer or "").split(",")), keep)


def check_folder(root: Path) -> None:
    """A photo folder given on the command line exists and is a folder."""
    from dedup_cli.errors import UsageError

    if not root.exists():
        raise UsageError(f"{root} does not exist")
    if not root.is_dir():
        raise UsageError(f"{root} is not a folder")


def check_folders(roots: list[Path], db: Path | None) -> None:
    """The photo folders of a command that takes several, before any work: each exists,
    none overlaps another, and each has a database of its own (``--db`` names one, so it
    is for one folder only)."""
    from dedup_cli.errors import UsageError
    from dedup_cli.jobs.workflow import check_separate_databases, check_separate_folders
    from dedup_cli.store.database import default_db_path

    if db is not None and len(roots) > 1:
        raise UsageError(
            "--db (or DEDUP_DB) names one database; with several folders each keeps its own"
        )
    for root in roots:
        check_folder(root)
    check_separate_folders(roots)
    check_separate_databases([db or default_db_path(root) for root in roots])


def open_store(root: Path, db: Path | None) -> Store:
    check_folder(root)
    if db is not None:
        check_parent_exists("--db", db)
    return Store((db or default_db_path(root)).expanduser().resolve())


def check_parent_exists(option: str, path: Path) -> None:
    """A file the user names goes into a folder that exists: a typo never makes folders."""
    from dedup_cli.errors import UsageError

    parent = path.expanduser().absolute().parent
    if not parent.is_dir():
        raise UsageError(f"{option} {path}: the folder {parent} does not exist")


def print_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()


class RichProgress(ProgressEvents):
    """A progress bar on stderr with files/s and ETA; silent without a terminal."""

    def __init__(self, description: str, quiet: bool) -> None:
        self.enabled = not quiet and err_console.is_terminal
        self.progress: Progress | None = None
        self.task: Any = None
        self.description = description

    def start(self, total: int, description: str | None = None) -> None:
        if not self.enabled:
            return
        self.finish()  # a new stage: the last bar stays on screen, finished
        self.description = description or self.description
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("[cyan]{task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=err_console,
            transient=False,
        )
        self.progress.start()
        self.task = self.progress.add_task(self.description, total=total, rate="")

    def advance(self, count: int) -> None:
        if self.progress is None:
            return
        self.progress.advance(self.task, count)
        speed = self.progress.tasks[0].speed
        unit = "pairs" if "prov" in self.description else "files"
        self.progress.update(self.task, rate=f"{speed:6.1f} {unit}/s" if speed else "")

    def finish(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
