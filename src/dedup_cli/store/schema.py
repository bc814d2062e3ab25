"""SQLAlchemy 2.x table definitions for the embedding cache and the action journal."""

from __future__ import annotations

from sqlalchemy import (
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class FileRecord(Base):
    """One image file under the root, identified by its path relative to the root."""

    __tablename__ = "files"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(Text, unique=True, index=True)
    size: Mapped[int] = mapped_column(Integer)
    mtime_ns: Mapped[int] = mapped_column(Integer)
    content_hash: Mapped[str | None] = mapped_column(String(32), index=True)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    # Why the file could not be decoded; retried only when size or mtime change.
    error: Mapped[str | None] = mapped_column(Text)
    # 32x32 grayscale pixels of the oriented image, for cheap pixel-level checks.
    thumbnail: Mapped[bytes | None] = mapped_column(LargeBinary)
    # Pictures shown inside the image (``media.regions.pack``): empty when none were found,
    # NULL when the file was hashed by a version that did not look.
    regions: Mapped[bytes | None] = mapped_column(LargeBinary)
    updated_at: Mapped[float] = mapped_column(Float)


class ModelRecord(Base):
    """An embedding model; several live side by side in one database."""

    __tablename__ = "models"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    dimension: Mapped[int] = mapped_column(Integer)
    preprocessing: Mapped[str] = mapped_column(Text)


class EmbeddingRecord(Base):
    """A unit vector as raw little-endian float32 bytes (never pickle)."""

    __tablename__ = "embeddings"

    file_id: Mapped[int] = mapped_column(
        ForeignKey("files.id", ondelete="CASCADE"), primary_key=True
    )
    model_id: Mapped[int] = mapped_column(
        ForeignKey("models.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    vector: Mapped[bytes] = mapped_column(LargeBinary)
    # When the vector was written, from the ``embedding_seq`` counter: ``find --new-only``
    # and the persisted ANN index take the rows written after the last search.
    seq: Mapped[int] = mapped_column(Integer, default=0, server_default="0", index=True)


class RunRecord(Base):
    """One run of ``find`` that acted on files; ``undo`` works run by run."""

    __tablename__ = "runs"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    created_at: Mapped[float] = mapped_column(Float)
    root: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(String(20))
    model: Mapped[str] = mapped_column(String(100))
    threshold: Mapped[float] = mapped_column(Float)
    manifest: Mapped[str | None] = mapped_column(Text)
    undone_at: Mapped[float | None] = mapped_column(Float)
    # Set when the run stopped acting (also after Ctrl-C); NULL while it acts or if killed.
    finished_at: Mapped[float | None] = mapped_column(Float)
    quarantine: Mapped[str | None] = mapped_column(Text)  # --to of a move run


class ActionRecord(Base):
    """One file touched (or skipped) by a run, with what it was and where it went."""

    __tablename__ = "actions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    path: Mapped[str] = mapped_column(Text)
    keeper: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(String(20))
    destination: Mapped[str | None] = mapped_column(Text)
    size: Mapped[int] = mapped_column(Integer)
    mtime_ns: Mapped[int] = mapped_column(Integer)
    content_hash: Mapped[str | None] = mapped_column(String(32))
    # done | skipped | undone | failed
    status: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(Text)
    at: Mapped[float] = mapped_column(Float)
    # A ``merge`` (``--merge-metadata``) rewrote ``path``: its content hash afterwards, so
    # undo puts the earlier bytes back only over the very bytes it wrote.
    after_hash: Mapped[str | None] = mapped_column(String(32), nullable=True)


class NotDuplicateRecord(Base):
    """Two files a reviewer said are not duplicates, by content hash (survives renames)."""

    __tablename__ = "not_duplicates"

    hash_a: Mapped[str] = mapped_column(String(32), primary_key=True)
    hash_b: Mapped[str] = mapped_column(String(32), primary_key=True)
    at: Mapped[float] = mapped_column(Float)


class ReviewDecisionRecord(Base):
    """What a reviewer decided for one group in the browser (``review.decisions``), saved as
    it is made so that a reload or a crash loses nothing. ``group_key`` names the group by
    its members (paths and content hashes): a group that changed is a new one."""

    __tablename__ = "review_decisions"

    group_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    decision: Mapped[str] = mapped_column(Text)  # JSON: keeper, remove, not_duplicates...
    at: Mapped[float] = mapped_column(Float)


class CounterRecord(Base):
    """Named monotonic counters: the embedding write sequence, and per model the sequence
    number the last ``find`` searched up to (``searched:<model id>``)."""

    __tablename__ = "counters"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[int] = mapped_column(Integer)
