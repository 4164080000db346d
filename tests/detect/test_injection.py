"""libinjection on decoded request values (``|injection``): what it reads, and bad input."""

from __future__ import annotations

import polars as pl

from shopwatch.detect.conditions import compile_where
from shopwatch.detect.injection import MAX_VALUES, injection_in, values_of


def test_values_are_read_as_the_application_reads_them() -> None:
    assert values_of("/a/b-c/d?x=1&y=") == []  # ids, slugs and blanks hold nothing
    assert values_of("/s?q=a%252527b") == [("q", "a%27b")]  # decoded twice, not forever
    assert values_of("name=O%27Reilly&x=%26lt%3Bb%26gt%3B") == [("name", "O'Reilly"), ("x", "<b>")]
    assert values_of('[{"q": ["a b", 3, null]}]') == [("q", "a b")]


def test_bad_input_is_read_without_error() -> None:
    for text in ("%zz%", "{not json", "?&&==&", "\x00\xff", "/%", "{" * 10_000, ""):
        assert injection_in(text) is None, text
    many = "/s?" + "&".join(f"p{i}=a+b" for i in range(10 * MAX_VALUES))
    assert len(values_of(many)) == MAX_VALUES
    assert injection_in("/s?q=" + "a+" * 100_000 + "%27+or+%271%27%3D%271") is None  # past the cap


def test_the_modifier_runs_once_per_distinct_value_and_keeps_nulls() -> None:
    urls = [
        "/s?q=1%27%20or%20%271%27%3D%271",
        None,
        "/s?q=shoes",
        "/s?q=1%27%20or%20%271%27%3D%271",
    ]
    frame = pl.DataFrame({"url.original": urls}, schema={"url.original": pl.String})
    hits = frame.select(compile_where({"url.original|injection": {"exists": True}}))
    assert hits.to_series().to_list() == [True, False, False, True]


def test_a_lone_surrogate_or_deep_nesting_costs_nothing_else() -> None:
    # a JSON "\ud800" decodes to a lone surrogate, which the C tokenizer cannot take
    assert injection_in('{"x": "\\ud800", "t": "1\' or 1=1 --"}') == "sqli:t:s&1c"
    assert injection_in('{"x": "\\ud800"}') is None
    # nested past what a walk can read: read as text, never raised
    deep = '{"a":' * 5000 + '"ok"' + "}" * 5000
    injection_in(deep)
