"""The SQLite cache of file facts and embeddings, and the journal of actions."""

from dedup_cli.store.database import FileState, Store, default_db_path

__all__ = ["FileState", "Store", "default_db_path"]
