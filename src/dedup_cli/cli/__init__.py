"""The ``dedup`` command line: Typer only. Each command parses options, calls the library
(``dedup_cli.jobs.find``), and renders the result; errors become one line and an exit code."""

from __future__ import annotations

from typing import Annotated

import typer

from dedup_cli import __version__
from dedup_cli.cli import (
    bench_cmd,
    cross_cmd,
    filename_cmd,
    find_cmd,
    hash_cmd,
    import_cmd,
    models_cmd,
    prune_cmd,
    review_cmd,
    undo_cmd,
)
from dedup_cli.cli.common import OptionalValues, state


def _arguments_named_like_git() -> None:
    """Help names an argument as git and the tools users know do: ``ROOT...`` and
    ``[RUN_ID]`` in the usage line, ``ROOT`` in the list. Typer 0.29 adds the Python type
    (``ROOT <path>``, ``RUN_ID <str>``) and braces (``{ROOT}``) and offers no setting for
    either; its argument class is told here, and left as it is by a Typer without these
    methods (the help test then says so)."""
    from typer.core import TyperArgument

    if not hasattr(TyperArgument, "display_type_rich"):
        return

    def no_type(self: TyperArgument, ctx: object) -> None:
        return None

    def usage_name(self: TyperArgument) -> str:
        name = str(self.metavar or self.name).upper()
        if self.nargs != 1 and not name.endswith("..."):
            name += "..."
        return name if self.required else f"[{name}]"

    TyperArgument.display_type_rich = no_type  # type: ignore[method-assign, assignment]
    TyperArgument._usage_display_name = usage_name  # type: ignore[method-assign]


_arguments_named_like_git()

app = typer.Typer(
    name="dedup",
    help="Find duplicate and near-duplicate photos with deep embeddings, and remove the "
    "redundant copies safely.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion, --show-completion
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: readable at 80 columns, pipes and less
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"dedup {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    debug: Annotated[
        bool, typer.Option("--debug", help="Show tracebacks for errors.", envvar="DEDUP_DEBUG")
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Find duplicate and near-duplicate photos, and remove copies only when you agree."""
    state.debug = debug


app.command("hash")(hash_cmd.hash_command)
app.command("find", cls=OptionalValues)(find_cmd.find_command)
app.command("cross", cls=OptionalValues)(cross_cmd.cross_command)
app.command("import")(import_cmd.import_command)
app.command("review")(review_cmd.review_command)
app.command("filename-clean")(filename_cmd.filename_clean_command)
app.command("prune-db")(prune_cmd.prune_command)
app.command("undo")(undo_cmd.undo_command)
app.command("bench")(bench_cmd.bench_command)
app.command("models")(models_cmd.models_command)


def main() -> None:
    app()
