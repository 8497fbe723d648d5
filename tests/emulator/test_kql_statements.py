"""Real query shapes: several statements, ``range``, weighted percentiles, ``materialize`` and
the engine-side partial failure (a summarize past its group budget)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from emulator import kql
from emulator.kql import Column, KqlError, Table, execute

NOW = datetime(2024, 1, 1, tzinfo=UTC)
TABLES = {
    "T": Table(
        "T",
        [Column("x", "long"), Column("w", "long"), Column("s", "string")],
        [[1, 1, "a"], [2, 5, "b"], [3, 1, "a"], [None, 2, "c"], [10, 1, "b"]],
    )
}


def run(query: str) -> list[Table]:
    return execute(query, TABLES, now=NOW)


def test_each_tabular_statement_gives_its_own_primary_result_table_in_text_order() -> None:
    first, second, third = run(
        "let big = 2;\nT | where x > big | project x;\nT | count;\nprint n = big * 10"
    )
    assert [t.name for t in (first, second, third)] == ["PrimaryResult"] * 3
    assert first.rows == [[3], [10]]
    assert second.rows == [[5]]
    assert third.rows == [[20]]


def test_lets_may_sit_between_statements_and_a_trailing_semicolon_is_fine() -> None:
    a, b = run("let t = T | where s == 'a'; t | count; let u = t | where x > 1; u | count;")
    assert (a.rows, b.rows) == ([[2]], [[1]])


def test_a_query_of_only_lets_is_a_syntax_error() -> None:
    with pytest.raises(KqlError) as caught:
        run("let a = 1;")
    assert caught.value.code == "SyntaxError"


def test_materialize_shares_one_result_between_statements() -> None:
    many, few = run(
        "let m = materialize(T | summarize n = count() by s); m | where n > 1; m | where n < 2"
    )
    assert sorted(many.rows) == [["a", 2], ["b", 2]]
    assert few.rows == [["c", 1]]


def test_range_makes_longs_reals_datetimes_and_timespans() -> None:
    (longs,) = run("range i from 1 to 7 step 3")
    assert (longs.columns, longs.rows) == ([Column("i", "long")], [[1], [4], [7]])
    (reals,) = run("range r from 0 to 1 step 0.5")
    assert (reals.columns[0].type, reals.rows) == ("real", [[0.0], [0.5], [1.0]])
    (days,) = run("range d from datetime(2024-01-01) to datetime(2024-01-02) step 12h")
    assert days.rows == [[NOW], [NOW + timedelta(hours=12)], [NOW + timedelta(days=1)]]
    (spans,) = run("range t from 1h to 3h step 1h | count")
    assert spans.rows == [[3]]
    (empty,) = run("range i from 5 to 1 step 1")
    assert empty.rows == []
    (joined,) = run("let n = 3; range i from 1 to n step 1 | extend sq = i * i")
    assert joined.rows == [[1, 1], [2, 4], [3, 9]]


def test_range_with_a_zero_step_is_a_bad_argument() -> None:
    with pytest.raises(KqlError) as caught:
        run("range i from 1 to 5 step 0")
    assert caught.value.code == "BadArgumentError"


def test_percentiles_and_weighted_percentiles_name_their_columns_as_kql_does() -> None:
    (table,) = run("T | summarize percentiles(x, 50, 90), percentilesw(x, w, 50, 90) by s")
    names = [c.name for c in table.columns]
    assert names == ["s", "percentile_x_50", "percentile_x_90", "percentile_x_501",
                     "percentile_x_901"]  # fmt: skip
    by_key = {row[0]: row[1:] for row in table.rows}
    assert by_key["a"] == [1, 3, 1, 3]
    # b: x=2 weighs 5 of 6 -> weighted median 2; the 90th needs 5.4 of 6, so 10
    assert by_key["b"] == [2, 10, 2, 10]
    (heavy,) = run("T | where s == 'b' | summarize percentilesw(x, w, 80)")
    assert heavy.rows == [[2]]  # 80% of 6 is 4.8 <= 5: the unweighted 80th would be 10
    (single,) = run("T | summarize p = percentilew(x, w, 50)")
    assert single.rows == [[2]]


def test_a_summarize_past_the_group_budget_keeps_the_first_groups_and_reports_it() -> None:
    outcome = kql.run("T | summarize count() by s", TABLES, now=NOW, max_groups=2)
    (table,) = outcome.tables
    assert [row[0] for row in table.rows] == ["a", "b"]
    assert outcome.overflowed_groups == 2
    within = kql.run("T | summarize count() by s", TABLES, now=NOW, max_groups=3)
    assert within.overflowed_groups is None
