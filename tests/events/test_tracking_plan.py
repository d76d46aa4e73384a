"""The tracking plan (`events.yaml`): filters on planned events must name planned properties
and compare them with values of their type; a bad one is refused with its file and line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from tests.e2e.conftest import write_project

from mailpulse.errors import ProjectError
from mailpulse.events.plan import load_plan
from mailpulse.project import load_project

PLAN = """\
Product Viewed:
  product_id: string
  price: number
  on_sale: boolean
  tags: array
  product:
    sku: string
    sizes: array
Order Completed:
  total: number
  placed_at: datetime
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = write_project(tmp_path / "p", smtp_port=2525)
    (root / "events.yaml").write_text(PLAN)
    return root


def journey(project: Path, where: str, event: str = "Product Viewed") -> Path:
    path = project / "journeys" / "planned.yaml"
    text = f"""\
        trigger:
          event: {event}
          where: {where}
        steps:
          - send: welcome
        """
    path.write_text(textwrap.dedent(text))
    return path


@pytest.mark.parametrize(
    "where",
    [
        "{price: {gte: 10}, on_sale: true}",
        "{product_id: {in: [a, b]}, tags: {contains: new}}",
        "{product.sku: X1, product.sizes: {contains: M}}",
        "{price: {exists: true}}",
        "{anything: 1}",  # an event the plan does not list: not checked
    ],
)
def test_filters_that_fit_the_plan_load(project: Path, where: str) -> None:
    event = "Unplanned" if "anything" in where else "Product Viewed"
    journey(project, where, event)
    assert "planned" in load_project(project).journeys


@pytest.mark.parametrize(
    ("where", "reason"),
    [
        (
            "{prise: {gte: 10}}",
            "Product Viewed has no property 'prise' in events.yaml: did you mean 'price'?",
        ),
        ("{price: {gte: ten}}", "price is a number in events.yaml, so 'ten' never matches it"),
        ("{on_sale: 'yes'}", "on_sale is a boolean in events.yaml"),
        ("{on_sale: {gt: 1}}", "on_sale is a boolean in events.yaml: gt cannot compare it"),
        ("{price: {contains: 1}}", "contains needs text or a list"),
        ("{product_id: {in: [a, 7]}}", "7 never matches it"),
        ("{product.skus: X1}", "Product Viewed.product has no property 'skus'"),
    ],
)
def test_filters_against_the_plan_name_file_and_line(
    project: Path, where: str, reason: str
) -> None:
    path = journey(project, where)
    with pytest.raises(ProjectError) as caught:
        load_project(project)
    assert (caught.value.path, caught.value.line) == (path, 3)
    assert reason in caught.value.message


def test_segments_and_fan_outs_are_checked_too(project: Path) -> None:
    (project / "segments").mkdir()
    segment = project / "segments" / "big.yaml"
    segment.write_text("conditions:\n  performed: Order Completed\n  where: {totl: {gte: 100}}\n")
    with pytest.raises(ProjectError) as caught:
        load_project(project)
    assert (caught.value.path, caught.value.line) == (segment, 3)
    assert "did you mean 'total'?" in caught.value.message
    segment.unlink()
    fan_out = project / "journeys" / "restock.yaml"
    fan_out.write_text(
        "trigger:\n  event: Back In Stock\n  fan_out:\n    catalog: products\n"
        "    performed: [Product Viewed]\n    key: productid\n    within: 30d\n"
        "steps:\n  - send: welcome\n"
    )
    with pytest.raises(ProjectError) as caught:
        load_project(project)
    assert (caught.value.path, caught.value.line) == (fan_out, 6)
    assert "did you mean 'product_id'?" in caught.value.message
    # One event named without a list is checked the same.
    fan_out.write_text(fan_out.read_text().replace("[Product Viewed]", "Product Viewed"))
    with pytest.raises(ProjectError) as caught:
        load_project(project)
    assert (caught.value.path, caught.value.line) == (fan_out, 6)


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ("Signed Up:\n  plan: str\n", 2, "unknown type 'str': did you mean 'string'?"),
        ("Signed Up: [plan]\n", 1, "list an event's properties as `name: type` lines"),
        ("Signed Up:\n  plan: string\n  plan: string\n", 3, "'plan' appears twice"),
    ],
)
def test_a_bad_plan_names_its_line(tmp_path: Path, text: str, line: int, reason: str) -> None:
    (tmp_path / "events.yaml").write_text(text)
    with pytest.raises(ProjectError) as caught:
        load_plan(tmp_path)
    assert caught.value.line == line
    assert reason in caught.value.message


def test_no_plan_checks_nothing(tmp_path: Path) -> None:
    assert load_plan(tmp_path) is None
