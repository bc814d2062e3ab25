"""``dedup models``: list the embedding models and their defaults."""

from __future__ import annotations

from rich.table import Table

from dedup_cli.cli.common import DebugOpt, JsonOpt, handle_errors, print_json
from dedup_cli.cli.render import out_console


def models_command(json_output: JsonOpt = False, debug: DebugOpt = False) -> None:
    """List the embedding models, their dimensions and default thresholds."""
    with handle_errors():
        from dedup_cli.models import list_models

        specs = list_models()
        if json_output:
            print_json(
                [
                    {
                        "name": s.name,
                        "dimension": s.dimension,
                        "default_threshold": s.default_threshold,
                        "embedding_types": list(s.type_dimensions) or ["final"],
                        "description": s.description,
                    }
                    for s in specs
                ]
            )
            return
        table = Table(title="dedup models")
        for column in ("name", "dimension", "threshold", "description"):
            table.add_column(column)
        for s in specs:
            table.add_row(s.name, str(s.dimension), f"{s.default_threshold:.2f}", s.description)
        out_console.print(table)
