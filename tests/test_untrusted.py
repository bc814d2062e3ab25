"""A database from elsewhere is untrusted: damaged vectors and thumbnails, rows naming paths
outside the folder and pickled payloads in vector blobs never crash a run, never execute,
and never make dedup read or act on anything outside the folder."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import sqlite3
from pathlib import Path

from typer.testing import CliRunner

from dedup_cli.cli import app

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "photos"
runner = CliRunner()


class Payload:
    """Unpickling this would create a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, ...]:
        return (Path.touch, (self.marker,))


def test_damaged_and_hostile_rows_are_ignored_or_repaired(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    shutil.copytree(EXAMPLES, root)
    (root / "image_database.db").unlink(missing_ok=True)
    assert runner.invoke(app, ["hash", str(root), "--workers", "0", "-q"]).exit_code == 0
    outside = tmp_path / "outside.jpg"
    outside.write_bytes((root / "chelsea.jpg").read_bytes())  # a precious file elsewhere
    marker = tmp_path / "executed"
    db = root / "image_database.db"
    with sqlite3.connect(db) as connection:
        ids = dict(connection.execute("SELECT path, id FROM files"))
        connection.execute(
            "UPDATE embeddings SET vector = ? WHERE file_id = ?",
            (pickle.dumps(Payload(marker)), ids["astronaut.jpg"]),
        )
        connection.execute(
            "UPDATE embeddings SET vector = x'010203' WHERE file_id = ?", (ids["rocket.jpg"],)
        )
        connection.execute("UPDATE files SET thumbnail = x'00' WHERE id = ?", (ids["coffee.jpg"],))
        # A row claiming a file outside the folder, with the real file's facts.
        stat = outside.stat()
        connection.execute(
            "UPDATE files SET path = ?, size = ?, mtime_ns = ? WHERE id = ?",
            (os.path.relpath(outside, root), stat.st_size, stat.st_mtime_ns, ids["chelsea.jpg"]),
        )
    result = runner.invoke(
        app,
        ["find", str(root), "--json", "--workers", "0", "--action", "delete", "--yes"],
    )
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert not marker.exists()  # nothing stored is ever unpickled or executed
    assert outside.exists()  # the row pointing outside was never used
    touched = [d["path"] for d in document["action"]["done"]]
    assert all(Path(p).resolve().is_relative_to(root.resolve()) for p in touched)
    # The damaged vectors were embedded again; the renamed row's file was found as new.
    assert document["stats"]["files_embedded_now"] == 3
    assert document["summary"]["groups"] == 3  # the example folder's three copies, as ever
    with sqlite3.connect(db) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        lengths = {n for (n,) in connection.execute("SELECT length(vector) FROM embeddings")}
    assert lengths == {1280 * 4}
