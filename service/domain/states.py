"""The states and kinds the service stores and reports, defined once (standard library only).

Each is a ``StrEnum``: a member *is* its string, so it is stored, compared with stored values
and serialised as that string (the values are those of openapi.yaml where the API shows them).
"""

from __future__ import annotations

from enum import StrEnum


class OperationState(StrEnum):
    """Where an operation is (``Operation.state``; openapi ``OperationState``)."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


ACTIVE_STATES = (OperationState.QUEUED, OperationState.RUNNING)
FINAL_STATES = (OperationState.SUCCEEDED, OperationState.FAILED, OperationState.CANCELLED)


class AttemptOutcome(StrEnum):
    """How a recorded attempt ended (``OperationAttempt.outcome``, in the model and in openapi;
    null while it runs)."""

    SUCCEEDED = "succeeded"
    RETRY = "retry"  # failed for now: another attempt follows
    FAILED = "failed"
    CANCELLED = "cancelled"
    WAITED = "waited"  # an update in progress, or Azure throttled it (429): not charged
    RELEASED = "released"  # its worker stopped gracefully and handed the operation back
    ABANDONED = "abandoned"  # its lease expired (crash, kill) and another attempt took over


class AttemptEnd(StrEnum):
    """How one attempt ended in its worker, before it is recorded (``Outcome.state``).

    ``lost`` and ``abandoned`` are never written by the attempt itself: ``lost`` means its
    fencing token is no longer current (taken over, or the operation was cancelled), so the
    operation is the new owner's; ``abandoned`` means the worker stopped while a write of the
    attempt may still reach Azure, so the lease is left to expire (the next claim records the
    attempt ``abandoned``).
    """

    SUCCEEDED = "succeeded"
    RETRY = "retry"
    FAILED = "failed"
    CANCELLED = "cancelled"
    RELEASED = "released"
    LOST = "lost"
    ABANDONED = "abandoned"


class Recorded(StrEnum):
    """What recording an attempt's end left, as a worker counts it (``TickReport.finished``):
    the operation's state after the attempt, or why nothing was written.

    Not part of the HTTP contract: ``lost`` (the attempt's fencing token was no longer current
    when it tried to record) and ``unrecorded`` (the database could not be written: the lease
    expires and another attempt re-reads Azure) never appear on an operation or an attempt.
    """

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    LOST = "lost"
    ABANDONED = "abandoned"
    UNRECORDED = "unrecorded"


class PolicyMode(StrEnum):
    """``enforce`` corrects drift; ``audit`` only reports it (openapi ``PolicyMode``)."""

    ENFORCE = "enforce"
    AUDIT = "audit"


class CredentialKind(StrEnum):
    """How a tenant authenticates to Azure (openapi ``Credential.kind``)."""

    SERVICE_PRINCIPAL = "service_principal"
    DELEGATED = "delegated"  # a user signed in with a device code
    HOST_IDENTITY = "host_identity"  # this host's managed identity (operator-allowed tenants)


class CredentialMethod(StrEnum):
    """How the credential's secret is held (openapi ``Credential.method``)."""

    SECRET = "secret"  # noqa: S105 - the name of a method, not a secret
    CERTIFICATE = "certificate"
    DEVICE_CODE = "device_code"
    AMBIENT = "ambient"
