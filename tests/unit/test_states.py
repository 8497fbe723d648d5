"""The states and kinds defined once in service.domain.states are the ones openapi.yaml lists."""

from __future__ import annotations

from typing import Any

from service.domain.states import (
    AttemptEnd,
    AttemptOutcome,
    CredentialKind,
    CredentialMethod,
    OperationState,
    PolicyMode,
    Recorded,
)
from tests.support.contract import CONTRACT

SCHEMAS: dict[str, Any] = CONTRACT["components"]["schemas"]


def _values(enum: type[Any]) -> set[str]:
    return {member.value for member in enum}


def test_operation_states_and_attempt_outcomes_match_the_contract() -> None:
    assert _values(OperationState) == set(SCHEMAS["OperationState"]["enum"])
    listed = set(SCHEMAS["OperationAttempt"]["properties"]["outcome"]["enum"]) - {None}
    assert _values(AttemptOutcome) == listed


def test_policy_modes_and_credential_kinds_match_the_contract() -> None:
    assert _values(PolicyMode) == set(SCHEMAS["PolicyMode"]["enum"])
    credential = SCHEMAS["Credential"]["properties"]
    assert _values(CredentialKind) == set(credential["kind"]["enum"])
    assert _values(CredentialMethod) == set(credential["method"]["enum"])


def test_lost_and_unrecorded_are_the_workers_own_and_never_reach_the_contract() -> None:
    internal = {"lost", "unrecorded"}
    assert "lost" in _values(AttemptEnd)
    assert internal <= _values(Recorded)
    assert not internal & _values(AttemptOutcome)
    assert not internal & set(SCHEMAS["OperationState"]["enum"])
    # Every other way an attempt can end is recorded under its own name.
    assert _values(AttemptEnd) - {"lost"} <= _values(AttemptOutcome)
    assert _values(Recorded) - internal - {"abandoned"} == _values(OperationState)
