import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailpulse.events.filters import FILTER_OPS, compile_filter, matches

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=10,
)
numbers = st.integers() | st.floats(allow_nan=False)


def check(op: str, expected: Any, properties: dict[str, Any], path: str = "p") -> bool:
    return matches([compile_filter(path, op, expected)], properties)


CASES = [
    ("eq", "USD", {"p": "USD"}, True),
    ("eq", "USD", {"p": "EUR"}, False),
    ("eq", "USD", {}, False),
    ("eq", None, {"p": None}, True),
    ("eq", None, {}, False),
    ("ne", "USD", {"p": "EUR"}, True),
    ("ne", "USD", {}, True),
    ("gt", 10, {"p": 10.5}, True),
    ("gt", 10, {"p": 10}, False),
    ("gte", 10, {"p": 10}, True),
    ("lt", 10, {"p": 9}, True),
    ("lte", 10, {"p": 11}, False),
    ("gt", 10, {"p": "11"}, False),
    ("gt", 0, {"p": True}, False),
    ("gt", "2024-01-01", {"p": "2024-06-30"}, True),
    ("lt", "2024-01-01", {"p": 5}, False),
    ("gte", 1, {}, False),
    ("in", ["USD", "EUR"], {"p": "EUR"}, True),
    ("in", ["USD", "EUR"], {"p": "GBP"}, False),
    ("in", [None], {}, False),
    ("contains", "shoe", {"p": "red shoes"}, True),
    ("contains", "boot", {"p": "red shoes"}, False),
    ("contains", "a", {"p": ["a", "b"]}, True),
    ("contains", 1, {"p": "1"}, False),
    ("contains", "a", {"p": {"a": 1}}, False),
    ("exists", True, {"p": 0}, True),
    ("exists", True, {"p": None}, False),
    ("exists", True, {}, False),
    ("exists", False, {}, True),
]


@pytest.mark.parametrize(("op", "expected", "properties", "result"), CASES)
def test_op(op: str, expected: Any, properties: dict[str, Any], result: bool) -> None:
    assert check(op, expected, properties) is result


def test_dotted_path_reaches_into_nested_properties() -> None:
    properties = {"product": {"sku": "A1", "tags": ["x"]}, "flat": "v"}
    assert check("eq", "A1", properties, "product.sku")
    assert not check("eq", "A1", properties, "product.name")
    assert not check("eq", "A1", properties, "flat.sku")
    assert not check("exists", True, properties, "product.tags.0")


def test_all_filters_must_hold_and_none_always_holds() -> None:
    where = [compile_filter("a", "eq", 1), compile_filter("b", "gt", 2)]
    assert matches(where, {"a": 1, "b": 3})
    assert not matches(where, {"a": 1, "b": 2})
    assert matches([], {})


@pytest.mark.parametrize(
    ("path", "op", "value", "message"),
    [
        ("p", "like", "x", "unknown filter op 'like'"),
        ("p", "gt", [1], "gt compares with a number or a text"),
        ("p", "lte", True, "lte compares with a number or a text"),
        ("p", "in", "USD", "in takes a list"),
        ("p", "exists", 1, "exists takes true or false"),
        ("a.", "eq", 1, "bad property path"),
        ("", "eq", 1, "bad property path"),
    ],
)
def test_compile_rejects_bad_filters(path: str, op: str, value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        compile_filter(path, op, value)


def valid_operand(op: str) -> st.SearchStrategy[Any]:
    if op in ("gt", "gte", "lt", "lte"):
        return numbers | st.floats() | st.text(max_size=8)
    if op == "in":
        return st.lists(json_values, max_size=4)
    if op == "exists":
        return st.booleans()
    return json_values


names = st.text(min_size=1, max_size=3).filter(lambda name: "." not in name)


@given(op=st.sampled_from(FILTER_OPS), data=st.data(), actual=json_values, name=names)
def test_matching_never_raises(op: str, data: st.DataObject, actual: Any, name: str) -> None:
    expected = data.draw(valid_operand(op))
    properties = {"p": actual, "q": {"r": actual}, name: actual}
    for where_path in ("p", "q.r", "missing", "p.deeper", name, f"q.{name}"):
        result = matches([compile_filter(where_path, op, expected)], properties)
        assert isinstance(result, bool)


@given(actual=json_values, expected=json_values)
def test_eq_agrees_with_python_equality(actual: Any, expected: Any) -> None:
    assert check("eq", expected, {"p": actual}) is (actual == expected)
    assert check("ne", expected, {"p": actual}) is (actual != expected)


@given(actual=numbers, expected=numbers)
def test_order_ops_agree_on_numbers(actual: float, expected: float) -> None:
    properties = {"p": actual}
    assert check("gt", expected, properties) is (actual > expected)
    assert check("gte", expected, properties) is (actual >= expected)
    assert check("lt", expected, properties) is (actual < expected)
    assert check("lte", expected, properties) is (actual <= expected)


@given(expected=numbers)
def test_nan_orders_with_nothing(expected: float) -> None:
    assert not any(check(op, expected, {"p": math.nan}) for op in ("gt", "gte", "lt", "lte"))
