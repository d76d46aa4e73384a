from pathlib import Path

import msgspec
import pytest

from mailpulse.errors import ProjectError
from mailpulse.events.filters import Filter
from mailpulse.journeys import JourneyDefinition, load_journeys, parse_journey
from mailpulse.journeys.definition import EntryRule, SendStep, WaitStep
from mailpulse.types import Event

TEMPLATES = {
    "back_in_stock",
    "welcome",
    "browse_reminder",
    "cart_reminder",
    "order_confirmation",
    "review_request",
    "win_back",
    "win_back_last_chance",
    "vip_welcome",
}
SHOP = Path(__file__).parents[2] / "examples" / "shop" / "journeys"

WELCOME = """\
name: Welcome
trigger:
  event: Signed Up
steps:
  - send: welcome
"""

CART = """\
name: Cart abandonment
trigger:
  event: Product Added
  where:
    currency: USD
    price: {gte: 10}
    product.sku: {exists: true}
entry: once_per 1d
exit_on:
  - event: Order Completed
  - event: Cart Emptied
    where: {}
steps:
  - wait: 1h
  - send: cart_reminder
    id: reminder-1
"""

POST_PURCHASE = """\
trigger:
  event: Order Completed
entry: always
message_class: transactional
steps:
  - send: order_confirmation
  - wait: 7d
  - send: review_request
    message_class: marketing
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_loads_a_realistic_set_sorted_by_id(tmp_path: Path) -> None:
    write(tmp_path, "welcome.yaml", WELCOME)
    write(tmp_path, "cart_abandonment.yaml", CART)
    write(tmp_path, "post_purchase.yaml", POST_PURCHASE)
    write(tmp_path, "notes.txt", "not a journey")

    cart, post, welcome = load_journeys(tmp_path, TEMPLATES)

    assert welcome.id == "welcome" and welcome.name == "Welcome"
    assert welcome.entry == EntryRule(kind="once")
    assert welcome.message_class == "marketing"
    assert welcome.steps == [SendStep(id="s0", template="welcome", message_class="marketing")]

    assert cart.trigger.event == "Product Added"
    assert cart.trigger.where == (
        Filter(path=("currency",), op="eq", value="USD"),
        Filter(path=("price",), op="gte", value=10),
        Filter(path=("product", "sku"), op="exists", value=True),
    )
    assert cart.entry == EntryRule(kind="once_per", period=86400.0)
    assert [goal.event for goal in cart.exit_on] == ["Order Completed", "Cart Emptied"]
    assert cart.steps == [
        WaitStep(id="s0", seconds=3600.0),
        SendStep(id="reminder-1", template="cart_reminder", message_class="marketing"),
    ]

    assert post.name == "post_purchase"
    assert post.message_class == "transactional"
    assert [(s.id, getattr(s, "message_class", None)) for s in post.steps] == [
        ("s0", "transactional"),
        ("s1", None),
        ("s2", "marketing"),
    ]


def test_trigger_matches_only_track_events_of_its_name_and_filters(tmp_path: Path) -> None:
    cart = parse_journey(CART, tmp_path / "cart.yaml")
    props = {"currency": "USD", "price": 12.5, "product": {"sku": "A1"}}

    def event(**fields: object) -> Event:
        base: dict = {"type": "track", "message_id": "m", "contact_key": "c"}
        return Event(**{**base, "event": "Product Added", "properties": props, **fields})

    assert cart.trigger.matches(event())
    assert not cart.trigger.matches(event(type="page", name="Product Added"))
    assert not cart.trigger.matches(event(type="identify"))
    assert not cart.trigger.matches(event(event="Product Viewed"))
    assert not cart.trigger.matches(event(properties={**props, "price": 9}))
    assert not cart.trigger.matches(event(properties={**props, "product": {}}))


def test_version_is_a_hash_of_the_text(tmp_path: Path) -> None:
    first = parse_journey(WELCOME, tmp_path / "welcome.yaml")
    again = parse_journey(WELCOME, tmp_path / "welcome.yaml")
    edited = parse_journey(WELCOME.replace("Welcome", "Hello"), tmp_path / "welcome.yaml")
    assert first.version == again.version
    assert first.version != edited.version
    assert len(first.version) == 12


def test_definition_round_trips_through_msgspec(tmp_path: Path) -> None:
    cart = parse_journey(CART, tmp_path / "cart.yaml")
    assert msgspec.json.decode(msgspec.json.encode(cart), type=JourneyDefinition) == cart


def test_scalars_follow_json_not_yaml_1_1(tmp_path: Path) -> None:
    text = """\
trigger:
  event: Signed Up
  where:
    country: NO
    since: 2024-01-01
    vip: true
    on: yes
steps:
  - send: welcome
"""
    journey = parse_journey(text, tmp_path / "j.yaml")
    assert [(f.path, f.value) for f in journey.trigger.where] == [
        (("country",), "NO"),
        (("since",), "2024-01-01"),
        (("vip",), True),
        (("on",), "yes"),
    ]


def test_example_shop_journeys_load_with_its_templates() -> None:
    journeys = {j.id: j for j in load_journeys(SHOP, TEMPLATES, {"inactive", "vip"})}
    assert sorted(journeys) == [
        "back_in_stock",
        "browse_abandonment",
        "cart_abandonment",
        "order_confirmation",
        "post_purchase",
        "vip_welcome",
        "welcome",
        "win_back",
    ]
    # Segment triggers stand for the membership events the fold appends.
    assert journeys["win_back"].trigger.event == "Segment Entered"
    assert journeys["vip_welcome"].trigger.matches(
        Event(
            type="track",
            message_id="m",
            contact_key="c",
            event="Segment Entered",
            properties={"segment": "vip"},
        )
    )
    assert journeys["welcome"].trigger.event == "Signed Up"
    cart = journeys["cart_abandonment"]
    assert cart.trigger.event == "Product Added"
    assert cart.entry == EntryRule(kind="once_per", period=86400.0)
    assert [goal.event for goal in cart.exit_on] == ["Order Completed"]

    def sends(journey_id: str) -> list[tuple[str, str]]:
        steps = journeys[journey_id].steps
        return [(s.template, s.message_class) for s in steps if isinstance(s, SendStep)]

    # Every order gets its own receipt; the review request is marketing, once a month at most.
    assert journeys["order_confirmation"].entry.kind == "always"
    assert sends("order_confirmation") == [("order_confirmation", "transactional")]
    assert sends("post_purchase") == [("review_request", "marketing")]


def test_missing_folder_has_no_journeys(tmp_path: Path) -> None:
    assert load_journeys(tmp_path / "journeys") == []


def test_template_names_are_checked_only_when_given(tmp_path: Path) -> None:
    text = "trigger: {event: Signed Up}\nsteps:\n  - send: welcom\n"
    assert parse_journey(text, tmp_path / "w.yaml").steps[0].template == "welcom"
    with pytest.raises(ProjectError) as caught:
        parse_journey(text, tmp_path / "w.yaml", TEMPLATES)
    assert caught.value.line == 3
    assert "no template named 'welcom': did you mean 'welcome'?" in caught.value.message


BAD = [
    pytest.param(
        "trigger: {event: A}\nstpes:\n  - send: welcome\n",
        2,
        "unknown key 'stpes' in a journey: did you mean 'steps'?",
        id="unknown-top-key",
    ),
    pytest.param("name: x\nsteps:\n  - send: welcome\n", 1, "missing `trigger`", id="no-trigger"),
    pytest.param(
        "trigger:\n  where: {a: 1}\nsteps:\n  - send: welcome\n",
        2,
        "missing `event`",
        id="no-event",
    ),
    pytest.param("trigger: {event: A}\n", 1, "missing `steps`", id="no-steps"),
    pytest.param("trigger: {event: A}\nsteps: []\n", 2, "at least one step", id="empty-steps"),
    pytest.param(
        "trigger: {event: A}\nsteps:\n  - send: welcome\n  - wait: 1 hour\n",
        4,
        "not a duration: '1 hour'",
        id="bad-wait",
    ),
    pytest.param(
        "trigger: {event: A}\nentry: once_per 1 day\nsteps:\n  - send: welcome\n",
        2,
        "not a duration",
        id="bad-period",
    ),
    pytest.param(
        "trigger: {event: A}\nentry: onse\nsteps:\n  - send: welcome\n",
        2,
        "unknown entry rule 'onse': did you mean 'once'?",
        id="unknown-entry",
    ),
    pytest.param(
        "trigger: {event: A}\nentry: once per 1d\nsteps:\n  - send: welcome\n",
        2,
        "'once' takes no period: to allow one entry per period write 'once_per <duration>'",
        id="once-with-period",
    ),
    pytest.param(
        "trigger: {event: A}\nentry: once_per\nsteps:\n  - send: welcome\n",
        2,
        "once_per needs a period",
        id="once-per-without-period",
    ),
    pytest.param(
        "trigger:\n  event: A\n  where:\n    price: {gte: 1}\n    qty: {gtt: 2}\nsteps:\n"
        "  - send: welcome\n",
        5,
        "unknown filter op 'gtt': did you mean 'gt'?",
        id="unknown-op",
    ),
    pytest.param(
        "trigger:\n  event: A\n  where:\n    currency:\n      in: USD\nsteps:\n  - send: welcome\n",
        5,
        "in takes a list",
        id="in-without-list",
    ),
    pytest.param(
        "trigger:\n  event: A\n  where:\n    currency: [USD, EUR]\nsteps:\n  - send: welcome\n",
        4,
        "write {in: [...]}",
        id="bare-list",
    ),
    pytest.param(
        "trigger:\n  event: A\n  where:\n    price: {gt: [1]}\nsteps:\n  - send: welcome\n",
        4,
        "gt compares with a number or a text",
        id="gt-with-list",
    ),
    pytest.param(
        "trigger:\n  event: A\n  where:\n    sku: {exists: yes}\nsteps:\n  - send: welcome\n",
        4,
        "exists takes true or false",
        id="exists-not-bool",
    ),
    pytest.param(
        "trigger:\n  event: A\n  where:\n    a..b: 1\nsteps:\n  - send: welcome\n",
        4,
        "bad property path 'a..b'",
        id="bad-path",
    ),
    pytest.param(
        "trigger: {event: A}\nmessage_class: transactionnal\nsteps:\n  - send: welcome\n",
        2,
        "did you mean 'transactional'?",
        id="bad-message-class",
    ),
    pytest.param(
        "trigger: {event: A}\nsteps:\n  - sned: welcome\n",
        3,
        "unknown key 'sned' in a step: did you mean 'send'?",
        id="unknown-step-kind",
    ),
    pytest.param(
        "trigger: {event: A}\nsteps:\n  - send: welcome\n    wait: 1h\n",
        3,
        "a step does exactly one of send, wait, wait_until, wait_for, split, branch; "
        "this has send and wait",
        id="two-kinds",
    ),
    pytest.param(
        "trigger: {event: A}\nsteps:\n  - id: x\n",
        3,
        "this has none",
        id="no-kind",
    ),
    pytest.param(
        "trigger: {event: A}\nsteps:\n  - wait: 1h\n    message_class: marketing\n",
        4,
        "unknown key 'message_class' in a wait step",
        id="key-of-other-kind",
    ),
    pytest.param(
        "trigger: {event: A}\nsteps:\n  - send: welcome\n    id: a\n  - send: welcome\n    id: a\n",
        6,
        "step id 'a' is used twice",
        id="duplicate-step-id",
    ),
    pytest.param(
        "trigger: {event: A}\nsteps:\n  - send: welcome\n    id: 'a:b'\n",
        4,
        "step id 'a:b' may hold only",
        id="bad-step-id",
    ),
    pytest.param(
        "trigger: {event: A}\ntrigger: {event: B}\nsteps:\n  - send: welcome\n",
        2,
        "'trigger' appears twice",
        id="duplicate-key",
    ),
    pytest.param(
        "trigger: {event: A}\nexit_on:\n  event: B\nsteps:\n  - send: welcome\n",
        3,
        "exit_on must be a list",
        id="exit-on-not-list",
    ),
    pytest.param(
        "trigger: {event: A}\nexit_on:\n  - evnt: B\nsteps:\n  - send: welcome\n",
        3,
        "unknown key 'evnt' in an exit_on goal: did you mean 'event'?",
        id="goal-typo",
    ),
    pytest.param(
        "trigger: Signed Up\nsteps:\n  - send: welcome\n",
        1,
        "trigger must be a mapping of `key: value` lines, e.g.\ntrigger:\n  event: Signed Up",
        id="trigger-not-mapping",
    ),
    pytest.param(
        "trigger: {event: 42}\nsteps:\n  - send: welcome\n",
        1,
        "event must be a text, not 42",
        id="event-not-text",
    ),
    pytest.param(
        "trigger: {event: A}\nsteps:\n  - send: welcome\n   wait: 1h\n",
        4,
        "YAML syntax error",
        id="yaml-syntax",
    ),
    pytest.param(
        'trigger: {event: "A}\nsteps:\n  - send: welcome\n',
        4,
        "(it began on line 1)",
        id="unclosed-quote",
    ),
    pytest.param("- send: welcome\n", 1, "a journey must be a mapping", id="not-a-mapping"),
    pytest.param("just words\n", 1, "a journey must be a mapping", id="scalar-file"),
    pytest.param(
        "trigger: {event: A}\nsteps:\n  - send: !!python/object:os.system welcome\n",
        3,
        "not a plain value",
        id="unsafe-tag",
    ),
]


@pytest.mark.parametrize(("text", "line", "message"), BAD)
def test_bad_journey_names_file_line_and_fix(
    tmp_path: Path, text: str, line: int, message: str
) -> None:
    path = write(tmp_path, "broken.yaml", text)
    with pytest.raises(ProjectError) as caught:
        load_journeys(tmp_path, TEMPLATES)
    assert caught.value.path == path
    assert caught.value.line == line, caught.value
    assert message in caught.value.message
    assert str(caught.value).startswith(f"{path}:{line}: ")


def test_empty_file_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "empty.yaml", "# nothing yet\n")
    with pytest.raises(ProjectError, match="the file is empty") as caught:
        load_journeys(tmp_path)
    assert caught.value.path == path


def test_bad_file_name_is_an_error(tmp_path: Path) -> None:
    write(tmp_path, "cart abandonment.yaml", WELCOME)
    with pytest.raises(ProjectError, match="rename the file"):
        load_journeys(tmp_path)


def test_same_id_twice_is_an_error(tmp_path: Path) -> None:
    write(tmp_path, "welcome.yaml", WELCOME)
    write(tmp_path, "welcome.yml", WELCOME)
    with pytest.raises(ProjectError, match="a second file for journey 'welcome'"):
        load_journeys(tmp_path)


def test_non_utf8_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "latin.yaml").write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(ProjectError, match="save it as UTF-8"):
        load_journeys(tmp_path)
