"""The store's tables as SQLAlchemy 2.0 typed ORM classes.

Images are keyed by (dataset, content hash): the same photo may sit in two datasets (the real
set and a benchmark copy, say) with a different path and split in each. Labels are rows, not
columns, so a human correction is added beside the imported label instead of overwriting it, and
every label keeps its source and author. Enumerations are plain strings guarded by CHECK
constraints, which behave the same on SQLite and PostgreSQL and migrate without enum types.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

LABEL_SOURCES = ("human", "import", "synthetic", "model")
FLAG_KINDS = ("exact_duplicate", "near_duplicate", "outlier", "label_issue", "box_issue", "label_conflict")
FLAG_STATUSES = ("open", "accepted", "dismissed", "closed")  # closed: the problem or its file is gone
QUEUE_STATUSES = ("pending", "sent", "labelled", "skipped")

# Stable constraint names: Alembic needs them to alter tables (SQLite batch mode included).
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


_BOX_COMPLETE = (
    "(x0 IS NULL AND y0 IS NULL AND x1 IS NULL AND y1 IS NULL) OR "
    "(x0 IS NOT NULL AND y0 IS NOT NULL AND x1 IS NOT NULL AND y1 IS NOT NULL)"
)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Dataset(Base):
    """A named dataset (an ingested manifest folder)."""

    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    root: Mapped[str] = mapped_column(Text, default="")
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    images: Mapped[list[Image]] = relationship(back_populates="dataset", cascade="all, delete-orphan")
    versions: Mapped[list[DatasetVersion]] = relationship(back_populates="dataset", cascade="all, delete-orphan")


class DatasetVersion(Base):
    """A content+labels hash of a dataset as it was synced (the data version on model cards)."""

    __tablename__ = "dataset_versions"
    __table_args__ = (UniqueConstraint("dataset_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    version: Mapped[str] = mapped_column(String(64))
    image_count: Mapped[int] = mapped_column(Integer, default=0)
    label_count: Mapped[int] = mapped_column(Integer, default=0)
    note: Mapped[str] = mapped_column(Text, default="")
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    dataset: Mapped[Dataset] = relationship(back_populates="versions")


class Image(Base):
    """One image of one dataset, identified by its content hash."""

    __tablename__ = "images"
    __table_args__ = (UniqueConstraint("dataset_id", "sha256"), Index("ix_images_sha256", "sha256"))

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    sha256: Mapped[str] = mapped_column(String(128))
    path: Mapped[str] = mapped_column(Text)  # relative to the dataset folder
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    split: Mapped[str | None] = mapped_column(String(16))
    cluster: Mapped[str] = mapped_column(String(64), default="")  # near-duplicate group from the manifest
    origin: Mapped[str] = mapped_column(Text, default="")
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    dataset: Mapped[Dataset] = relationship(back_populates="images")
    labels: Mapped[list[Label]] = relationship(back_populates="image", cascade="all, delete-orphan")
    predictions: Mapped[list[Prediction]] = relationship(back_populates="image", cascade="all, delete-orphan")
    flags: Mapped[list[Flag]] = relationship(back_populates="image", cascade="all, delete-orphan")
    queue_items: Mapped[list[QueueItem]] = relationship(back_populates="image", cascade="all, delete-orphan")


class Label(Base):
    """An image-level label (no box) or a box label; ``brand`` None means "no mark"."""

    __tablename__ = "labels"
    __table_args__ = (
        CheckConstraint(_one_of("source", LABEL_SOURCES), name="source"),
        CheckConstraint(_BOX_COMPLETE, name="box_complete"),
        Index("ix_labels_image_id", "image_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"))
    brand: Mapped[str | None] = mapped_column(String(32))
    x0: Mapped[float | None] = mapped_column(Float)
    y0: Mapped[float | None] = mapped_column(Float)
    x1: Mapped[float | None] = mapped_column(Float)
    y1: Mapped[float | None] = mapped_column(Float)
    source: Mapped[str] = mapped_column(String(16))
    author: Mapped[str] = mapped_column(String(200), default="")
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    image: Mapped[Image] = relationship(back_populates="labels")

    @property
    def box(self) -> tuple[float, float, float, float] | None:
        if self.x0 is None or self.y0 is None or self.x1 is None or self.y1 is None:
            return None
        return (self.x0, self.y0, self.x1, self.y1)


class Prediction(Base):
    """A model's output for an image.

    Rows without a box hold the image-level score per brand (the highest candidate score, 0 when
    none), so "this image was predicted by this version" is a fact even when nothing was found.
    """

    __tablename__ = "predictions"
    __table_args__ = (
        CheckConstraint(_BOX_COMPLETE, name="box_complete"),
        Index("ix_predictions_image_version", "image_id", "model_version"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"))
    model_version: Mapped[str] = mapped_column(String(64))
    brand: Mapped[str | None] = mapped_column(String(32))
    score: Mapped[float] = mapped_column(Float)
    x0: Mapped[float | None] = mapped_column(Float)
    y0: Mapped[float | None] = mapped_column(Float)
    x1: Mapped[float | None] = mapped_column(Float)
    y1: Mapped[float | None] = mapped_column(Float)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    image: Mapped[Image] = relationship(back_populates="predictions")

    @property
    def box(self) -> tuple[float, float, float, float] | None:
        if self.x0 is None or self.y0 is None or self.x1 is None or self.y1 is None:
            return None
        return (self.x0, self.y0, self.x1, self.y1)


class Flag(Base):
    """A curation finding on an image, and the reviewer's decision about it.

    One flag per image and kind: a re-run updates the open flag, and a dismissed one stays
    dismissed instead of being raised again.
    """

    __tablename__ = "flags"
    __table_args__ = (
        UniqueConstraint("image_id", "kind"),
        CheckConstraint(_one_of("kind", FLAG_KINDS), name="kind"),
        CheckConstraint(_one_of("status", FLAG_STATUSES), name="status"),
        Index("ix_flags_status", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    score: Mapped[float] = mapped_column(Float, default=0.0)  # higher = more likely a real problem
    cluster: Mapped[str | None] = mapped_column(String(64))  # duplicate cluster id ("group" in JSON)
    reason: Mapped[str] = mapped_column(Text, default="")
    method: Mapped[str] = mapped_column(String(32), default="")  # imagehash | fastdup | cleanlab
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="open")
    decided_by: Mapped[str | None] = mapped_column(String(200))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    image: Mapped[Image] = relationship(back_populates="flags")


class QueueItem(Base):
    """An image waiting for (or back from) a human labeller in Label Studio."""

    __tablename__ = "queue_items"
    __table_args__ = (
        CheckConstraint(_one_of("status", QUEUE_STATUSES), name="status"),
        Index("ix_queue_items_status", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"))
    score: Mapped[float] = mapped_column(Float, default=0.0)  # priority: higher is labelled first
    reason: Mapped[str] = mapped_column(Text, default="")
    model_version: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    label_studio_task_id: Mapped[int | None] = mapped_column(Integer)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    image: Mapped[Image] = relationship(back_populates="queue_items")
