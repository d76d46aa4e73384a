"""The segment schema: what files and admin API data compile to, and how bad ones are refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest
import yaml

from mailpulse.audience.segments import (
    DefinitionError,
    Segment,
    load_segments,
    parse_segment,
    segment_from_data,
)
from mailpulse.audience.segments.conditions import (
    Aggregate,
    AllOf,
    AnyOf,
    Not,
    Performed,
    RelativeDate,
    Seen,
    Subscribed,
    TraitCondition,
)
from mailpulse.errors import ProjectError
from mailpulse.events.filters import Filter

DAY = 86400.0

ENGAGED = """\
name: Engaged shoppers
description: Bought lately and still reading us
conditions:
  all:
    - {trait: plan, in: [pro, team]}
    - {trait: signed_up_at, before: 30d, lt: "2030-01-01"}
    - {seen: last, within: 60d}
    - performed: Product Added
      where:
        price: {gte: 10}
        currency: USD
      at_least: 2
      within: 1h
    - {not_performed: Order Completed, within: 30d}
    - {email: opened, within: 30d, template: weekly}
    - any:
        - {subscribed: newsletter}
        - not: {trait: country, eq: NO}
"""


def filt(path: str, op: str, value: Any) -> Filter:
    return Filter(path=tuple(path.split(".")), op=op, value=value)


def test_a_file_compiles_to_its_conditions(tmp_path: Path) -> None:
    segment = parse_segment(ENGAGED, tmp_path / "engaged.yaml")

    assert (segment.id, segment.name) == ("engaged", "Engaged shoppers")
    assert segment.description == "Bought lately and still reading us"
    assert segment.condition == AllOf(
        conditions=(
            TraitCondition(path=("plan",), filters=(filt("plan", "in", ["pro", "team"]),)),
            TraitCondition(
                path=("signed_up_at",),
                filters=(filt("signed_up_at", "lt", "2030-01-01"),),
                date=RelativeDate(before=30 * DAY),
            ),
            Seen(which="last", date=RelativeDate(within=60 * DAY)),
            Performed(
                aggregate=Aggregate(
                    event="Product Added",
                    where=(filt("price", "gte", 10), filt("currency", "eq", "USD")),
                ),
                within=3600.0,
                at_least=2,
            ),
            Performed(
                aggregate=Aggregate(event="Order Completed"),
                within=30 * DAY,
                at_least=0,
                at_most=0,
            ),
            Performed(
                aggregate=Aggregate(
                    event="Email Opened",
                    where=(filt("template", "eq", "weekly"), filt("machine", "ne", True)),
                ),
                within=30 * DAY,
            ),
            AnyOf(
                conditions=(
                    Subscribed(topic="newsletter"),
                    # Scalars follow JSON: the country code NO stays text.
                    Not(
                        condition=TraitCondition(
                            path=("country",), filters=(filt("country", "eq", "NO"),)
                        )
                    ),
                )
            ),
        )
    )


def test_api_data_compiles_to_the_same_segment(tmp_path: Path) -> None:
    from_file = parse_segment(ENGAGED, tmp_path / "engaged.yaml")
    data = yaml.safe_load(ENGAGED.replace("eq: NO", "eq: 'NO'"))
    assert segment_from_data("engaged", data) == from_file


def test_sugar_compiles_to_what_it_stands_for(tmp_path: Path) -> None:
    def condition(text: str) -> Any:
        return segment_from_data("s", {"conditions": yaml.safe_load(text)}).condition

    assert condition("{not_performed: Order Completed}") == condition(
        "{performed: Order Completed, at_most: 0}"
    )
    assert condition("{email: received, journey: welcome}") == Performed(
        aggregate=Aggregate(event="Email Sent", where=(filt("journey", "eq", "welcome"),))
    )
    assert condition("{email: clicked, at_least: 3}") == Performed(
        aggregate=Aggregate(event="Email Clicked", where=(filt("machine", "ne", True),)),
        at_least=3,
    )
    assert condition("{performed: Signed Up}") == Performed(aggregate=Aggregate(event="Signed Up"))
    assert condition("{performed: Signed Up, at_most: 2}").at_least == 0
    assert condition("{trait: plan, gte: a, lt: m}").filters == (
        filt("plan", "gte", "a"),
        filt("plan", "lt", "m"),
    )
    assert condition("{trait: address.city, exists: true}").path == ("address", "city")


def test_version_follows_the_meaning_not_the_wording(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    plain = parse_segment("conditions: {performed: Order Completed, at_most: 0}", path)
    sugar = parse_segment(
        "name: Never bought\nconditions:\n  not_performed: Order Completed\n", path
    )
    changed = parse_segment("conditions: {performed: Order Completed, at_most: 1}", path)
    assert plain.version == sugar.version != changed.version
    assert len(plain.version) == 12


def test_a_segment_round_trips_through_msgspec(tmp_path: Path) -> None:
    segment = parse_segment(ENGAGED, tmp_path / "engaged.yaml")
    again = msgspec.json.decode(msgspec.json.encode(segment), type=Segment)
    assert again == segment


def test_loads_a_folder_sorted_by_id(tmp_path: Path) -> None:
    assert load_segments(tmp_path / "absent") == []
    (tmp_path / "vip.yaml").write_text("conditions: {trait: vip, eq: true}\n")
    (tmp_path / "engaged.yml").write_text(ENGAGED)
    (tmp_path / "notes.txt").write_text("not a segment")
    assert [s.id for s in load_segments(tmp_path)] == ["engaged", "vip"]

    (tmp_path / "vip.yml").write_text("conditions: {trait: vip, eq: true}\n")
    with pytest.raises(ProjectError, match="a second file for segment 'vip'"):
        load_segments(tmp_path)


# Each bad condition stands on line 5 of a file and at /conditions/all/1 of API data; the
# pointer column says where inside it the error points.
BAD_CONDITIONS = [
    ("{trait: plan, eqq: pro}", "/eqq", "unknown key 'eqq' in a condition: did you mean 'eq'?"),
    ("{trait: plan, at_least: 2}", "/at_least", "'at_least' does not go with trait"),
    ("{trait: plan, performed: Signed Up}", "", "exactly one of"),
    ("{eq: pro}", "", "this has none"),
    ("{trait: plan}", "", "say what to check about trait 'plan'"),
    ("{trait: plan., eq: pro}", "/trait", "bad trait name 'plan.'"),
    ("{trait: plan, in: pro}", "/in", "in takes a list of values"),
    ("{trait: age, gt: [1]}", "/gt", "gt compares with a number or a text"),
    ("{trait: vip, exists: maybe}", "/exists", "exists takes true or false"),
    ("{trait: signed_up_at, before: 30 days}", "/before", "not a duration"),
    ("{trait: signed_up_at, within: 0s}", "/within", "within must be longer than 0s"),
    ("{seen: latest, within: 1d}", "/seen", "unknown seen 'latest': did you mean 'last'?"),
    ("{seen: last}", "", "say when"),
    ("{performed: 42}", "/performed", "performed (a track event name) must be a text"),
    ("{performed: Signed Up, at_least: two}", "/at_least", "at_least must be a whole number"),
    ("{performed: Signed Up, at_least: true}", "/at_least", "at_least must be a whole number"),
    ("{performed: Signed Up, at_most: -1}", "/at_most", "at_most cannot be negative"),
    ("{performed: Signed Up, at_least: 3, at_most: 2}", "/at_most", "is more than at_most"),
    ("{performed: Signed Up, at_least: 0}", "/at_least", "at_least: 0 always holds"),
    ("{performed: Signed Up, within: 1h, at_least: 1001}", "/at_least", "counts go up to 1000"),
    ("{performed: Signed Up, within: 1y}", "/within", "not a duration"),
    ("{performed: Paid, where: {price: {gtee: 1}}}", "/where/price/gtee", "did you mean 'gte'?"),
    ("{performed: Paid, where: {price: [1, 2]}}", "/where/price", "write {in: [...]}"),
    ("{performed: Paid, where: {price: {}}}", "/where/price", "no condition on 'price'"),
    ("{performed: Paid, where: [price]}", "/where", "where must be a"),
    ("{not_performed: Paid, at_most: 1}", "/at_most", "'at_most' does not go with not_performed"),
    ("{email: openned}", "/email", "unknown email 'openned': did you mean 'opened'?"),
    ("{email: opened, template: 7}", "/template", "template must be a text, not 7"),
    ("{subscribed: [news]}", "/subscribed", "must be a text"),
    ("{all: []}", "/all", "`all` needs at least one condition"),
    ("{any: {trait: plan, eq: pro}}", "/any", "any must be a list"),
    ("{not: [{trait: plan, eq: pro}]}", "/not", "a condition must be a"),
    ("[trait, plan]", "", "a condition must be a"),
    ("{segment: [vip]}", "/segment", "must be a text"),
    ("{segment: 'v i p'}", "/segment", "may hold only letters"),
]


def bad_file(condition: str) -> str:
    return f"name: Bad\nconditions:\n  all:\n    - {{trait: plan, eq: pro}}\n    - {condition}\n"


@pytest.mark.parametrize(("condition", "pointer", "reason"), BAD_CONDITIONS)
def test_a_bad_file_is_refused_with_line_and_fix(
    tmp_path: Path, condition: str, pointer: str, reason: str
) -> None:
    path = tmp_path / "bad.yaml"
    with pytest.raises(ProjectError) as caught:
        parse_segment(bad_file(condition), path)
    error = caught.value
    assert (error.path, error.line) == (path, 5), error
    assert reason in error.message


@pytest.mark.parametrize(("condition", "pointer", "reason"), BAD_CONDITIONS)
def test_bad_api_data_is_refused_with_pointer_and_fix(
    condition: str, pointer: str, reason: str
) -> None:
    data = yaml.safe_load(bad_file(condition))
    with pytest.raises(DefinitionError) as caught:
        segment_from_data("bad", data)
    error = caught.value
    assert error.pointer == "/conditions/all/1" + pointer
    assert reason in error.reason
    assert str(error).startswith(f"segment bad: at /conditions/all/1{pointer}: ")


def test_errors_about_the_whole_file(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    cases = [
        ("", None, "the file is empty"),
        ("name: S\n", 1, "missing `conditions`"),
        ("name: S\ncondition: {trait: a, eq: 1}\n", 2, "did you mean 'conditions'?"),
        ("conditions: {trait: a, eq: 1}\nname: [S]\n", 2, "name must be a text"),
        ("conditions:\n  all:\n    - {trait: a, eq: 1\n", 4, "YAML syntax error"),
        ("- conditions\n", 1, "a segment must be a mapping"),
    ]
    for text, line, reason in cases:
        with pytest.raises(ProjectError) as caught:
            parse_segment(text, path)
        assert caught.value.line == line, text
        assert reason in caught.value.message, text
    with pytest.raises(ProjectError, match="may hold only letters"):
        parse_segment("conditions: {trait: a, eq: 1}", tmp_path / "a b.yaml")


def test_errors_about_the_whole_api_data() -> None:
    cases: list[tuple[str, Any, str, str]] = [
        ("s", ["conditions"], "", "a segment must be an object"),
        ("s", {"conditions": None}, "", "missing `conditions`"),
        ("s", {"conditions": {1: "x"}}, "/conditions", "a key in a condition must be a text"),
        ("s", {"conditions": {"not": {"a/b": 1}}}, "/conditions/not/a~1b", "unknown key 'a/b'"),
        ("a b", {"conditions": {"trait": "a", "eq": 1}}, "", "may hold only letters"),
    ]
    for segment_id, data, pointer, reason in cases:
        with pytest.raises(DefinitionError) as caught:
            segment_from_data(segment_id, data)
        assert caught.value.pointer == pointer, data
        assert reason in caught.value.reason, data


def test_segments_refer_to_segments_and_are_checked_together(tmp_path: Path) -> None:
    (tmp_path / "vip.yaml").write_text("conditions: {trait: ltv, gte: 500}\n")
    (tmp_path / "vip_readers.yaml").write_text(
        "conditions:\n  all:\n    - {segment: vip}\n    - {email: opened, within: 30d}\n"
    )
    assert [s.id for s in load_segments(tmp_path)] == ["vip", "vip_readers"]

    (tmp_path / "lapsed.yaml").write_text("name: Lapsed\nconditions:\n  segment: vipp\n")
    with pytest.raises(ProjectError) as caught:
        load_segments(tmp_path)
    assert (caught.value.path.name, caught.value.line) == ("lapsed.yaml", 3)
    assert "no segment named 'vipp'" in caught.value.message

    (tmp_path / "lapsed.yaml").write_text("conditions: {not: {segment: vip_readers}}\n")
    (tmp_path / "vip.yaml").write_text("conditions:\n  any:\n    - {segment: lapsed}\n")
    with pytest.raises(ProjectError) as caught:
        load_segments(tmp_path)
    assert caught.value.line is not None
    assert "lapsed → vip_readers → vip → lapsed" in caught.value.message
    assert "in a cycle" in caught.value.message


def test_an_endless_window_is_refused_with_its_line(tmp_path: Path) -> None:
    with pytest.raises(ProjectError) as caught:
        parse_segment("conditions:\n  performed: Signed Up\n  within: .inf\n", tmp_path / "s.yaml")
    assert caught.value.line == 3
    assert "finite number of seconds" in caught.value.message
