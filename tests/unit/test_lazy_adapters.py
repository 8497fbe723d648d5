"""The composition root builds the Azure adapters on first use (issue 16: an API worker's
start-up imported azure-identity, msal, azure-monitor-query and requests for nothing)."""

from __future__ import annotations

from service import bootstrap
from service.bootstrap import Lazy


class _Adapter:
    def __init__(self) -> None:
        self.closed = False

    def call(self) -> str:
        return "answer"

    def close(self) -> None:
        self.closed = True


def test_an_adapter_is_built_once_on_first_use_and_closed_only_if_built() -> None:
    built: list[_Adapter] = []

    def build() -> _Adapter:
        built.append(_Adapter())
        return built[-1]

    lazy = Lazy(build)
    lazy.close()  # never used: nothing to build, nothing to close
    assert built == []
    assert lazy.call() == "answer"
    assert lazy.call() == "answer"
    assert len(built) == 1
    lazy.close()
    assert built[0].closed


def test_a_use_waits_for_the_background_import_first() -> None:
    order: list[str] = []
    lazy = Lazy(lambda: order.append("built") or _Adapter())
    bootstrap.warming(lambda: order.append("waited"))
    try:
        lazy.call()
    finally:
        bootstrap.warming(None)
    assert order == ["waited", "built"]


def test_the_runtime_builds_no_azure_adapter_until_one_is_used() -> None:
    from service.config import Settings

    runtime = bootstrap.build_runtime(Settings(database_url="sqlite://"))
    try:
        for part in (runtime.identity, runtime.ml, runtime.exports, runtime.logs.port):
            assert isinstance(part, Lazy)
            assert part._built is None
        assert runtime.ml.capabilities("managed_online").rolls_instances
        assert type(runtime.ml.target()).__name__ == "MlTargets"  # type: ignore[attr-defined]
    finally:
        runtime.close()
        runtime.database.dispose()


def test_two_adapters_are_never_built_at_the_same_time() -> None:
    """Building imports SDK modules; two threads importing overlapping modules in different
    orders made CPython raise _DeadlockError in one (a reconciler's first attempts, seen in CI).
    So builds of different adapters run one after the other, whichever threads ask."""
    import threading
    import time

    inside: list[str] = []
    overlaps: list[tuple[str, ...]] = []

    def build(name: str) -> object:
        inside.append(name)
        if len(inside) > 1:
            overlaps.append(tuple(inside))
        time.sleep(0.2)
        inside.remove(name)
        return object()

    a, b = Lazy(lambda: build("a")), Lazy(lambda: build("b"))
    threads = [threading.Thread(target=lazy.target) for lazy in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert overlaps == []
    assert a._built is not None
    assert b._built is not None


def test_a_build_may_use_another_adapter() -> None:
    inner = Lazy(lambda: "inner")
    outer = Lazy(lambda: f"outer of {inner.target()}")
    assert outer.target() == "outer of inner"
