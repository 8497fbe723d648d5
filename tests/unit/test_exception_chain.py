"""The one walker of an exception's causes (``service.errors.exception_chain``)."""

from __future__ import annotations

import itertools

from service.errors import exception_chain


class _Wrapped(Exception):
    """Like azure-core's errors: the original failure on ``inner_exception``."""

    def __init__(self, inner: BaseException | None) -> None:
        super().__init__("wrapped")
        self.inner_exception = inner


def test_the_chain_follows_cause_then_context_outermost_first() -> None:
    root = OSError("down")
    middle = ValueError("middle")
    middle.__context__ = root
    outer = RuntimeError("outer")
    outer.__cause__ = middle
    assert list(exception_chain(outer)) == [outer, middle, root]


def test_an_inner_exception_is_preferred_over_the_implicit_context() -> None:
    inner = ConnectionError("refused")
    wrapper = _Wrapped(inner)
    wrapper.__context__ = KeyError("unrelated")
    assert list(exception_chain(wrapper)) == [wrapper, inner]


def test_a_cycle_ends_the_walk() -> None:
    a, b = ValueError("a"), ValueError("b")
    a.__cause__, b.__cause__ = b, a
    assert list(exception_chain(a)) == [a, b]


def test_a_long_chain_is_cut_at_the_limit() -> None:
    errors = [ValueError(str(i)) for i in range(30)]
    for outer, inner in itertools.pairwise(errors):
        outer.__cause__ = inner
    assert list(exception_chain(errors[0], limit=5)) == errors[:5]
