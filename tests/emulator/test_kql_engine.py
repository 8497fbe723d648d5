"""Every supported KQL construct on small hand-made tables; expected rows are written by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from emulator.kql import Column, Table, execute

NOW = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)
H = timedelta(hours=1)


def _requests() -> Table:
    cols = [("timestamp", "datetime"), ("name", "string"), ("duration", "real"),
            ("success", "string"), ("code", "long"), ("customDimensions", "dynamic")]  # fmt: skip
    rows: list[list[Any]] = [
        [NOW - 3 * H, "GET /", 10.0, "True", 200, {"input": {"x": 1}, "Service Name": "a"}],
        [NOW - 2 * H, "POST /score", 30.0, "True", 200, {"Service Name": "a"}],
        [NOW - 2 * H + timedelta(minutes=30), "POST /score", 50.0, "False", 500, None],
        [NOW - H, "get /", 20.0, "True", 200, {"input": [1, 2], "Service Name": "b"}],
        [NOW - timedelta(minutes=10), "POST /Score", None, "False", None, {"k": "v"}],
    ]
    return Table("requests", [Column(n, t) for n, t in cols], rows)


TABLES = {"requests": _requests()}


def run(query: str, **kwargs: Any) -> tuple[list[tuple[str, str]], list[list[Any]]]:
    (table,) = execute(query, TABLES, now=NOW, **kwargs)
    assert table.name == "PrimaryResult"
    return [(c.name, c.type) for c in table.columns], table.rows


def rows(query: str) -> list[list[Any]]:
    return run(query)[1]


@pytest.mark.parametrize(
    ("predicate", "expected_durations"),
    [
        ("duration == 30", [30.0]),
        ("duration != 30", [10.0, 50.0, 20.0]),  # null != 30 is null: the row is dropped
        ("duration < 20", [10.0]),
        ("duration <= 20", [10.0, 20.0]),
        ("duration > 20", [30.0, 50.0]),
        ("duration >= 30 and code == 500", [50.0]),
        ("duration < 15 or duration > 40", [10.0, 50.0]),
        ("not(duration > 15)", [10.0]),
        ("(duration + 5) * 2 == 70", [30.0]),
        ("duration / 2 - 1 == 4", [10.0]),
        ("name == 'GET /'", [10.0]),
        ("name =~ 'GET /'", [10.0, 20.0]),
        ("name !~ 'get /'", [30.0, 50.0, None]),
        ("name contains 'score'", [30.0, 50.0, None]),
        ("name contains_cs 'Score'", [None]),
        ("name !contains 'SCORE'", [10.0, 20.0]),
        ("name has 'score'", [30.0, 50.0, None]),
        ("name has 'sco'", []),  # has matches whole terms only
        ("name !has 'post'", [10.0, 20.0]),
        ("name startswith 'post'", [30.0, 50.0, None]),
        ("name endswith 'E'", [30.0, 50.0, None]),
        ("name in ('GET /', 'get /')", [10.0, 20.0]),
        ("name !in ('GET /', 'get /')", [30.0, 50.0, None]),
        ("name in~ ('get /')", [10.0, 20.0]),
        ("code in (500, 404)", [50.0]),
        ("duration between (20 .. 30)", [30.0, 20.0]),
        ("timestamp > ago(90m)", [20.0, None]),
        ("timestamp <= now(-2h)", [10.0, 30.0]),
        ("timestamp > datetime(2024-01-01 10:15)", [50.0, 20.0, None]),
        (
            "timestamp > datetime(2024-01-01T10:15:00Z) and timestamp < datetime(2024-01-01T11:30)",
            [50.0, 20.0],
        ),
        ("isnull(duration)", [None]),
        ("isnotnull(code)", [10.0, 30.0, 50.0, 20.0]),
        ("customDimensions contains 'input'", [10.0, 20.0]),
        ("customDimensions has 'v'", [None]),
        ("customDimensions.input.x == 1", [10.0]),
        ("customDimensions['Service Name'] == 'b'", [20.0]),
        ("tostring(customDimensions.input) == '[1,2]'", [20.0]),
        ("isempty(customDimensions)", [50.0]),
        ("success == 'False'", [50.0, None]),
        ("tobool(success)", [10.0, 30.0, 20.0]),
        ("iff(code == 200, 'ok', 'bad') == 'bad'", [50.0, None]),  # null condition: else
        ("strlen(name) == 5", [10.0, 20.0]),
        ("tolower(name) == 'post /score'", [30.0, 50.0, None]),
        ("toupper(name) == 'GET /'", [10.0, 20.0]),
        ("toint('20') == duration", [20.0]),
        ("tolong(code) + 1 == 201", [10.0, 30.0, 20.0]),
        ("todouble('1e1') == duration", [10.0]),
        ("toreal(code) == 500.0", [50.0]),
        ("todatetime('2024-01-01T09:00:00Z') == timestamp", [10.0]),
        ("isnotempty(name) and name matches regex '^[A-Z]+ /$'", [10.0]),
        ("bin(duration, 25) == 25", [30.0]),
        ("floor(timestamp, 1d) == datetime(2024-01-01)", [10.0, 30.0, 50.0, 20.0, None]),
        ("parse_json('{\"a\": 5}').a == 5", [10.0, 30.0, 50.0, 20.0, None]),
        ("todynamic('[1,2]')[1] == 2 and code == 500", [50.0]),
    ],
)
def test_where_operators_and_functions(predicate: str, expected_durations: list[Any]) -> None:
    assert [r[2] for r in rows(f"requests | where {predicate}")] == expected_durations


def test_string_literal_forms() -> None:
    query = (
        r"""print a = 'it\'s', b = "tab\there", c = @'C:\path', """
        r"""d = @"say ""hi"" ", e = "x" 'y'"""
    )
    assert rows(query) == [["it's", "tab\there", "C:\\path", 'say "hi" ', "xy"]]


def test_numeric_and_timespan_literals() -> None:
    columns, result = run(
        "print a = 5m, b = 1h, c = 1d, d = 30s, e = 100ms, f = 1.5, g = 7,"
        " h = timespan(1.02:00:00),"
        ' i = dynamic(null), j = dynamic({"x": 1}), k = true, l = long(null), m = -2'
    )
    assert result == [[timedelta(minutes=5), H, timedelta(days=1), timedelta(seconds=30),
                       timedelta(milliseconds=100), 1.5, 7, timedelta(days=1, hours=2), None,
                       {"x": 1}, True, None, -2]]  # fmt: skip
    types = ["real", "long", "timespan", "dynamic", "dynamic", "bool", "long", "long"]
    assert [t for _, t in columns] == ["timespan"] * 5 + types


def test_project_with_renames_and_expressions() -> None:
    columns, result = run(
        "requests | where code == 500 | project name, ms = duration * 2, code, customDimensions"
    )
    assert columns == [("name", "string"), ("ms", "real"), ("code", "long"),
                       ("customDimensions", "dynamic")]  # fmt: skip
    assert result == [["POST /score", 100.0, 500, None]]


def test_project_derived_names() -> None:
    columns, _ = run("requests | project customDimensions.input, duration + 1, tostring(code)")
    assert [n for n, _ in columns] == ["customDimensions_input", "Column2", "Column3"]


def test_project_away_keep_and_rename() -> None:
    columns, _ = run("requests | project-away customDim*, code")
    assert [n for n, _ in columns] == ["timestamp", "name", "duration", "success"]
    columns, _ = run("requests | project-keep *ame, duration")
    assert [n for n, _ in columns] == ["name", "duration"]
    columns, result = run("requests | project-rename ms = duration | take 1")
    assert [n for n, _ in columns][2] == "ms"
    assert result[0][2] == 10.0


def test_extend_adds_and_replaces_columns() -> None:
    columns, result = run(
        "requests | take 2 | extend slow = duration > 20, ms2 = duration * 2, duration = 0.0"
    )
    assert [n for n, _ in columns] == [
        "timestamp",
        "name",
        "duration",
        "success",
        "code",
        "customDimensions",
        "slow",
        "ms2",
    ]
    assert [r[2:] for r in result] == [
        [0.0, "True", 200, {"input": {"x": 1}, "Service Name": "a"}, False, 20.0],
        [0.0, "True", 200, {"Service Name": "a"}, True, 60.0],
    ]


def test_summarize_default_names_and_types() -> None:
    columns, result = run(
        "requests | summarize count(), countif(success == 'False'), sum(code), avg(duration),"
        " min(duration), max(timestamp), dcount(name), percentile(duration, 50),"
        " percentiles(duration, 25, 99.5), make_list(code), make_set(success)"
    )
    assert columns == [
        ("count_", "long"), ("countif_", "long"), ("sum_code", "long"), ("avg_duration", "real"),
        ("min_duration", "real"), ("max_timestamp", "datetime"), ("dcount_name", "long"),
        ("percentile_duration_50", "real"), ("percentile_duration_25", "real"),
        ("percentile_duration_99_5", "real"), ("list_code", "dynamic"), ("set_success", "dynamic"),
    ]  # fmt: skip
    # durations (nulls ignored): 10, 20, 30, 50 -> nearest rank: p50 = 20, p25 = 10, p99.5 = 50
    assert result == [[5, 2, 1100, 27.5, 10.0, NOW - timedelta(minutes=10), 4, 20.0, 10.0, 50.0,
                       [200, 200, 500, 200], ["True", "False"]]]  # fmt: skip


def test_summarize_by_bin_and_named_aggregates() -> None:
    columns, result = run(
        "requests | summarize n = count(), failures = countif(success == 'False'),"
        " rate = todouble(countif(success == 'False')) / count() by bin(timestamp, 1h)"
        " | order by timestamp asc"
    )
    assert columns == [("timestamp", "datetime"), ("n", "long"), ("failures", "long"),
                       ("rate", "real")]  # fmt: skip
    # 09:00 ok | 10:00 ok, 10:30 failed | 11:00 ok, 11:50 failed
    assert result == [[NOW - 3 * H, 1, 0, 0.0], [NOW - 2 * H, 2, 1, 0.5], [NOW - H, 2, 1, 0.5]]


def test_summarize_by_several_keys_and_expressions() -> None:
    columns, result = run(
        "requests | summarize count() by success, tostring(customDimensions['Service Name'])"
    )
    assert columns == [("success", "string"), ("customDimensions_Service Name", "string"),
                       ("count_", "long")]  # fmt: skip
    assert result == [["True", "a", 2], ["False", "", 2], ["True", "b", 1]]


def test_summarize_without_rows() -> None:
    assert rows("requests | where code == 999 | summarize count(), avg(duration)") == [[0, None]]
    assert rows("requests | where code == 999 | summarize count() by name") == []


def test_arg_max() -> None:
    columns, result = run("requests | summarize arg_max(timestamp, duration, code) by success")
    assert [n for n, _ in columns] == ["success", "timestamp", "duration", "code"]
    assert result == [["True", NOW - H, 20.0, 200], ["False", NOW - timedelta(minutes=10), None,
                                                      None]]  # fmt: skip
    columns, _ = run("requests | summarize arg_max(timestamp, *) by name")
    assert [n for n, _ in columns] == ["name", "timestamp", "duration", "success", "code",
                                       "customDimensions"]  # fmt: skip


def test_order_by_defaults_to_descending_with_nulls_last() -> None:
    assert [r[2] for r in rows("requests | order by duration")] == [50.0, 30.0, 20.0, 10.0, None]
    assert [r[2] for r in rows("requests | sort by duration asc")] == [None, 10.0, 20.0, 30.0, 50.0]
    assert [r[2] for r in rows("requests | order by duration asc nulls last")][-1] is None


def test_order_by_several_keys() -> None:
    result = rows("requests | order by success asc, duration desc | project success, duration")
    assert result == [["False", 50.0], ["False", None], ["True", 30.0], ["True", 20.0],
                      ["True", 10.0]]  # fmt: skip


def test_take_limit_top_count_distinct() -> None:
    assert len(rows("requests | take 2")) == 2
    assert len(rows("requests | limit 10")) == 5
    assert [r[2] for r in rows("requests | top 2 by duration")] == [50.0, 30.0]
    assert [r[2] for r in rows("requests | top 2 by duration asc")] == [None, 10.0]
    assert run("requests | count") == ([("Count", "long")], [[5]])
    assert rows("requests | distinct success") == [["True"], ["False"]]
    assert len(rows("requests | distinct *")) == 5


def test_let_statements() -> None:
    query = """
        let threshold = 25;
        let since = ago(150m);
        let slow = requests | where duration > threshold;
        slow | where timestamp > since | project duration
    """
    assert rows(query) == [[30.0], [50.0]]


def test_union() -> None:
    columns, result = run(
        "union (requests | where code == 500 | project name), (print name = 'x', extra = 1)"
    )
    assert columns == [("name", "string"), ("extra", "long")]
    assert result == [["POST /score", None], ["x", 1]]
    assert len(rows("requests | union requests | count")) == 1
    assert rows("requests | union requests | count") == [[10]]


def test_timespan_filters_sources_before_the_query() -> None:
    window = (NOW - 2 * H, NOW - H)
    assert run("requests | count", timespan=window)[1] == [[3]]  # both ends inclusive
    # the timespan applies before ago(): only rows in both survive
    assert run("requests | where timestamp > ago(90m)", timespan=window)[1] == [
        TABLES["requests"].rows[3]
    ]


def test_null_semantics_in_arithmetic_and_logic() -> None:
    result = rows(
        "requests | where isnull(code) | project a = code + 1, b = duration > 1 or true,"
        " c = duration > 1 and false, d = iff(isnull(duration), -1.0, duration)"
    )
    assert result == [[None, True, False, -1.0]]


def test_integer_division_and_types() -> None:
    columns, result = run("print a = 7 / 2, b = -7 / 2, c = 7 / 2.0, d = 7 % 3, e = 1h / 30m")
    assert result == [[3, -3, 3.5, 1, 2.0]]
    assert [t for _, t in columns] == ["long", "long", "real", "long", "real"]


def test_datetime_arithmetic() -> None:
    columns, result = run(
        "print a = datetime(2024-01-02) - datetime(2024-01-01), b = datetime(2024-01-01) + 1h,"
        " c = bin(datetime(2024-01-01 10:47), 15m), d = 2 * 1h"
    )
    assert result == [[timedelta(days=1), datetime(2024, 1, 1, 1, tzinfo=UTC),
                       datetime(2024, 1, 1, 10, 45, tzinfo=UTC), 2 * H]]  # fmt: skip
    assert [t for _, t in columns] == ["timespan", "datetime", "datetime", "timespan"]


def test_case_coalesce_strcat_and_friends() -> None:
    result = rows(
        "print a = case(1 > 2, 'x', 2 > 1, 'y', 'z'), b = coalesce(long(null), 3),"
        " c = strcat('a', 1, true), d = substring('hello', 1, 3), e = round(2.346, 2),"
        " f = array_length(dynamic([1, 2, 3])), g = extract('id=([0-9]+)', 1, 'x id=42'),"
        " h = split('a,b', ','), i = tostring(1.0), j = abs(-3),"
        " k = hourofday(datetime(2024-01-01 05:06))"
    )
    assert result == [["y", 3, "a1true", "ell", 2.35, 3, "42", ["a", "b"], "1", 3, 5]]


def test_render_is_ignored_and_comments_are_skipped() -> None:
    query = "requests // the source\n| count // how many\n| render timechart with (title='x')"
    assert rows(query) == [[5]]
