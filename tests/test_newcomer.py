"""What a new user trips over: results on stdout, arguments checked before any heavy work
(without importing torch), no folders made by a typo, ``--debug`` and ``-h`` anywhere, help
readable at 80 columns."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dedup_cli.cli import app

runner = CliRunner()


def run_cli(tmp_path: Path, *args: str) -> tuple[int, str, str, bool]:
    """Run ``dedup ARGS`` in a fresh interpreter: exit code, stdout, stderr, and whether
    torch was imported."""
    script = (
        "import sys\n"
        "from dedup_cli.cli import app\n"
        "try:\n"
        "    app(sys.argv[1:])\n"
        "finally:\n"
        "    sys.stderr.write('\\nTORCH=%s\\n' % ('torch' in sys.modules))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEDUP_")}
    env.update(DEDUP_STATE_DIR=str(tmp_path / "state"), COLUMNS="80")
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    lines = done.stderr.splitlines()
    flags = [line for line in lines if line.startswith("TORCH=")]
    err = "\n".join(line for line in lines if not line.startswith("TORCH="))
    return done.returncode, done.stdout, err, flags == ["TORCH=True"]


def test_a_missing_folder_fails_at_once_without_importing_torch(tmp_path: Path) -> None:
    code, out, err, torch = run_cli(tmp_path, "find", str(tmp_path / "nope"))
    assert code == 2 and "does not exist" in err and out == ""
    assert not torch


def test_missing_weights_are_a_usage_error_before_any_model_loads(
    tmp_path: Path, library: Path
) -> None:
    code, _, err, torch = run_cli(tmp_path, "find", str(library), "--weights", "/nope.bin")
    assert code == 2 and "--weights /nope.bin does not exist" in err
    assert not torch
    assert not (library / "image_database.db").exists()  # nothing was hashed


def test_a_quarantine_inside_the_folder_is_refused_before_hashing(library: Path) -> None:
    result = runner.invoke(
        app, ["find", str(library), "--action", "move", "--to", str(library / "q"), "--yes"]
    )
    assert result.exit_code == 2 and "inside a scanned folder" in result.stderr
    assert not (library / "image_database.db").exists()


def test_to_without_a_move_is_refused(library: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["find", str(library), "--to", str(tmp_path / "q")])
    assert result.exit_code == 2 and "--to is only for --action move" in result.stderr
    assert not (library / "image_database.db").exists()


@pytest.mark.parametrize("option", ["--html", "--db"])
def test_a_file_in_a_missing_folder_is_refused_and_no_folder_is_made(
    library: Path, tmp_path: Path, option: str
) -> None:
    target = tmp_path / "typo" / ("report.html" if option == "--html" else "photos.db")
    result = runner.invoke(app, ["find", str(library), option, str(target)])
    assert result.exit_code == 2 and "does not exist" in result.stderr
    assert not target.parent.exists()


def test_debug_is_accepted_after_the_command(tmp_path: Path) -> None:
    code, _, err, _ = run_cli(tmp_path, "find", str(tmp_path / "nope"), "--debug")
    assert code != 0 and "Traceback" in err and "UsageError" in err


def test_results_go_to_stdout_and_progress_to_stderr(library: Path, tmp_path: Path) -> None:
    """``dedup find photos > report.txt`` keeps the results; with --json stdout is the
    document alone."""
    code, out, err, _ = run_cli(tmp_path, "find", str(library), "--workers", "0")
    assert code == 0, err
    assert "duplicate groups" in out and "keep" in out and "remove" in out
    assert "duplicate groups" not in err
    code, out, _, _ = run_cli(tmp_path, "find", str(library), "--workers", "0", "--json")
    assert code == 0 and json.loads(out)["groups"]
    models = runner.invoke(app, ["models"])
    assert "effnet" in models.stdout


def test_help_with_h_reads_well_at_80_columns() -> None:
    for command in ([], ["find"], ["cross"], ["hash"], ["undo"], ["filename-clean"]):
        result = runner.invoke(app, [*command, "-h"], env={"COLUMNS": "80"}, terminal_width=80)
        assert result.exit_code == 0, command
        text = result.stdout
        assert "Usage: dedup" in text
        assert "<bool>" not in text and "{root}" not in text, command
        # Options and arguments name their value (--db FILE, ROOT), never its Python type
        # (``<path>``, ``<list[Path]>``), and the usage line has no braces (``{ROOT}``).
        assert not re.search(r"<[\w\[\]|, ]+>", text), (command, text)
        assert "{" not in text.split("\n\n")[0], command
        assert max(len(line) for line in text.splitlines()) <= 80, command
    assert "Usage: dedup find [OPTIONS] ROOT..." in runner.invoke(app, ["find", "-h"]).stdout
    assert "Usage: dedup undo [OPTIONS] [RUN_ID]" in runner.invoke(app, ["undo", "-h"]).stdout
    assert "--install-completion" in runner.invoke(app, ["-h"]).stdout


def test_exclude_leaves_out_folders_and_files_by_glob(library: Path) -> None:
    """``-e trip`` leaves out a folder and everything under it (its copies are not found);
    ``-e '*.png'`` leaves out files by name; each counted, the database never told they
    are gone."""
    result = runner.invoke(
        app, ["find", str(library), "--json", "--workers", "0", "-e", "trip", "-e", "*.png"]
    )
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    everything = [p for g in doc["groups"] for p in (g["keep"], *g["remove"])]
    assert not any("/trip/" in p or p.endswith(".png") for p in everything)
    assert doc["stats"]["skipped_excluded"] >= 2
    whole = runner.invoke(app, ["find", str(library), "--json", "--workers", "0"])
    assert any("/trip/" in p for g in json.loads(whole.stdout)["groups"] for p in g["remove"])


def test_exclude_patterns_ignore_case() -> None:
    from dedup_cli.media.scan import matches

    assert matches("IMG_1.PNG", ["*.png"]) and matches("Backup", ["backup"])
    assert matches("2020/RAW", ["2020/raw"]) and matches("a/Backup", ["backup"])
    assert not matches("backups", ["backup"]) and not matches("photo.jpg", ["*.png"])
