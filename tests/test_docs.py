"""Docs stay in step with the CLI: every command and option is documented and has help."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
import typer.main

from dedup_cli.cli import app

DOCS = Path(__file__).resolve().parent.parent / "docs"
CLI_DOC = (DOCS / "cli.md").read_text(encoding="utf-8")
COMMANDS = typer.main.get_command(app).commands  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_command_is_documented_with_help(name: str) -> None:
    command: click.Command = COMMANDS[name]
    assert command.help, f"{name} has no help text"
    assert re.search(rf"^## `dedup {name}\b", CLI_DOC, re.MULTILINE), f"{name} missing in cli.md"


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_option_is_documented(name: str) -> None:
    for param in COMMANDS[name].params:
        if isinstance(param, click.Option) and param.name != "help":
            assert param.help, f"{name} {param.opts} has no help"
            assert any(f"`{opt}" in CLI_DOC for opt in param.opts + param.secondary_opts), (
                f"{name} {param.opts} missing in docs/cli.md"
            )


def test_readme_commands_are_the_ci_commands() -> None:
    readme = (DOCS.parent / "README.md").read_text(encoding="utf-8")
    ci = (DOCS.parent / ".ci" / "run").read_text(encoding="utf-8")
    test_command = next(line for line in readme.splitlines() if "pytest" in line and "pip" in line)
    assert test_command.split("&& ", 1)[1] in ci


def test_help_imports_nothing_heavy() -> None:
    import subprocess
    import sys

    probe = (
        "import sys, runpy; sys.argv = ['dedup', '--help']\n"
        "try:\n    runpy.run_module('dedup_cli', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'open_clip', 'transformers', 'matplotlib') if m in sys.modules]\n"
        "print('HEAVY', heavy)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert "HEAVY []" in out.stdout


def test_every_module_is_named_in_the_architecture_page() -> None:
    """docs/architecture.md lists every module under its folder: a new module fails this
    test until the page says where it belongs."""
    package = Path(__file__).resolve().parent.parent / "src" / "dedup_cli"
    page = (package.parent.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    missing = []
    for module in sorted(package.rglob("*.py")):
        relative = module.relative_to(package)
        if module.name in ("__init__.py", "__main__.py") and relative.parent != Path("cli"):
            continue
        if module.name not in page:
            missing.append(str(relative))
        elif relative.parent != Path(".") and f"{relative.parent.as_posix()}/" not in page:
            missing.append(f"{relative} (folder {relative.parent}/ not described)")
    assert not missing, f"modules not named in docs/architecture.md: {missing}"
