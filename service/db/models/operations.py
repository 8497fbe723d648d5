"""Reconciler operations, their attempts, and the subscriptions' shared write budgets."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from service.db.models.base import ID, Base, Versioned
from service.db.types import UTCDateTime, utcnow
from service.domain.ids import new_id


class Operation(Versioned, Base):
    """One change to apply to one endpoint, with its attempts and outcome."""

    __tablename__ = "operations"
    __table_args__ = (
        CheckConstraint(
            "state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')", name="state"
        ),
        CheckConstraint("attempts <= max_attempts", name="attempts_cap"),
        Index("ix_operations_state_not_before", "state", "not_before"),
        # An endpoint's operations by time: its latest finished one (compliance) is one probe.
        Index(
            "ix_operations_workspace_endpoint_created",
            "workspace_id",
            "endpoint_name",
            "created_at",
        ),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ID, nullable=False, index=True)
    workspace_id: Mapped[str] = mapped_column(ID, nullable=False, index=True)
    endpoint_name: Mapped[str] = mapped_column(String(255), nullable=False)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    desired: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    cause: Mapped[str] = mapped_column(String(32), nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False, default="queued")
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=5)
    last_error: Mapped[str | None] = mapped_column(Text)
    azure_operation_id: Mapped[str | None] = mapped_column(String(128))
    # Set while the attempt holds one of its online endpoint's parallel-update slots
    # ("{workspace id}/{online endpoint}"); a slot counts while the operation runs under a lease.
    rollout_group: Mapped[str | None] = mapped_column(String(300))
    not_before: Mapped[datetime | None] = mapped_column(UTCDateTime())
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The fencing token: incremented by every claim (never reused), so each attempt has its own
    # and every state change of an attempt is written only while the token is still current.
    fence: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default="0")
    # Set while the attempt leaves its running Azure operation to its worker's follower (no
    # thread held): such an operation does not count against its tenant's concurrency cap.
    # Cleared by every other state change (fenced like them).
    following_since: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(String(64), nullable=False)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class OperationAttempt(Base):
    """One attempt of an operation: who ran it, when, how it ended, and what Azure answered.

    ``number`` is the attempt's fencing token (``operations.fence`` when it was claimed).
    ``charged`` says whether it counts against ``max_attempts``: an attempt cut short by a lost
    lease (worker crash) or a graceful stop, or one that only waited for Azure, does not.
    """

    __tablename__ = "operation_attempts"

    operation_id: Mapped[str] = mapped_column(
        ID, ForeignKey("operations.id", ondelete="CASCADE"), primary_key=True
    )
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    worker: Mapped[str] = mapped_column(String(128), nullable=False)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # None while running; then succeeded | retry | failed | cancelled | waited | released |
    # abandoned (its lease expired: the worker crashed or stopped renewing)
    outcome: Mapped[str | None] = mapped_column(String(16))
    charged: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    error: Mapped[str | None] = mapped_column(Text)
    azure_status: Mapped[int | None] = mapped_column(Integer)  # HTTP status of Azure's answer
    azure_code: Mapped[str | None] = mapped_column(String(64))
    retry_after_s: Mapped[float | None] = mapped_column(Float)  # the server's Retry-After
    retry_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # no next attempt before
    azure_operation_id: Mapped[str | None] = mapped_column(String(128))


class WriteBudget(Base):
    """Per-subscription pacing of Azure writes, shared by every worker.

    ``next_write_at`` (epoch seconds) is the earliest time the next write may start. A worker
    reserves a slot with one atomic ``UPDATE ... SET next_write_at = max(next_write_at, now) +
    SLOT_MARGIN/rate RETURNING``, so concurrent workers get distinct, spaced slots; what keeps
    every second within the budget is the count of ``SubscriptionWrite`` rows in that same
    transaction.
    """

    __tablename__ = "write_budgets"

    subscription_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    next_write_at: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)


class SubscriptionWrite(Base):
    """One write that counts against its subscription's budget (``db_writes.take_write_slot``).

    Azure counts a write when it arrives, some time between its start and its answer. A write
    is reserved only while fewer than the budget's writes per second of its subscription count
    (``counted_until`` not passed): until the call is answered (a horizon past its deadline,
    extended while an unanswered write is waited for), then one second more. So no second can
    see more arrivals than the budget, however late each write goes or is answered.
    """

    __tablename__ = "subscription_writes"
    __table_args__ = (Index("ix_subscription_writes_counted", "subscription_id", "counted_until"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    subscription_id: Mapped[str] = mapped_column(String(36), nullable=False)
    counted_until: Mapped[float] = mapped_column(Float, nullable=False)  # epoch seconds


# At most one active (queued or running) operation per endpoint, whoever enqueues it: the
# database refuses a second one, so concurrent API calls and workers cannot double up.
_ACTIVE = Operation.state.in_(("queued", "running"))
Index(
    "uq_operations_active_endpoint",
    Operation.workspace_id,
    Operation.endpoint_name,
    unique=True,
    postgresql_where=_ACTIVE,
    sqlite_where=_ACTIVE,
)
