"""Well-formed calls, shaped as the Segment spec's own examples, become the right Events."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from mailpulse.events import parse_batch, parse_call

RECEIVED_AT = 1_700_000_000.0
UA = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_12_5) AppleWebKit/537.36 Chrome/58.0.3029.110"


def body(value: object) -> bytes:
    return json.dumps(value).encode()


def epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def only_event(call_type: str, value: object):
    parsed = parse_call(call_type, body(value), received_at=RECEIVED_AT)
    assert len(parsed.events) == 1
    return parsed.events[0]


def test_identify_spec_example_with_traits() -> None:
    event = only_event(
        "identify",
        {
            "anonymousId": "507f191e810c19729de860ea",
            "channel": "browser",
            "context": {"ip": "8.8.8.8", "userAgent": UA},
            "integrations": {"All": False, "Mixpanel": True, "Salesforce": True},
            "messageId": "022bb90c-bbac-11e4-8dfc-aa07a5b093db",
            "receivedAt": "2015-02-23T22:28:55.387Z",
            "sentAt": "2015-02-23T22:28:55.111Z",
            "timestamp": "2015-02-23T22:28:55.111Z",
            "traits": {
                "name": "Peter Gibbons",
                "email": "peter@example.com",
                "plan": "premium",
                "logins": 5,
                "address": {"street": "6th St", "city": "San Francisco", "postalCode": "94103"},
            },
            "type": "identify",
            "userId": "97980cfea0067",
            "version": "1.1",
        },
    )
    assert event.type == "identify"
    assert event.message_id == "022bb90c-bbac-11e4-8dfc-aa07a5b093db"
    assert event.contact_key == "97980cfea0067"
    assert event.user_id == "97980cfea0067"
    assert event.anonymous_id == "507f191e810c19729de860ea"
    assert event.traits["email"] == "peter@example.com"
    assert event.traits["address"]["city"] == "San Francisco"
    assert event.context == {"ip": "8.8.8.8", "userAgent": UA}
    assert event.properties == {}
    # sentAt equals timestamp: the device sent at once, so the event happened when received.
    assert event.timestamp == RECEIVED_AT
    assert event.received_at == RECEIVED_AT


def test_track_spec_example_corrects_clock_skew() -> None:
    event = only_event(
        "track",
        {
            "anonymousId": "23adfd82-aa0f-45a7-a756-24f2a7a4c895",
            "context": {
                "library": {"name": "analytics.js", "version": "2.11.1"},
                "page": {"path": "/academy/", "title": "Analytics Academy"},
                "ip": "108.0.78.21",
            },
            "event": "Course Clicked",
            "integrations": {},
            "messageId": "ajs-f8ca1e4de5024d9430b3928bd8ac6b96",
            "properties": {"title": "Intro to Analytics"},
            "receivedAt": "2015-12-12T19:11:01.266Z",
            "sentAt": "2015-12-12T19:11:01.169Z",
            "timestamp": "2015-12-12T19:11:01.249Z",
            "type": "track",
            "userId": "AiUGstSDIg",
            "originalTimestamp": "2015-12-12T19:11:01.152Z",
        },
    )
    assert event.event == "Course Clicked"
    assert event.properties == {"title": "Intro to Analytics"}
    assert event.contact_key == "AiUGstSDIg"
    assert event.context["library"] == {"name": "analytics.js", "version": "2.11.1"}
    assert event.timestamp == pytest.approx(RECEIVED_AT + 0.080, abs=1e-6)


def test_track_http_api_example_without_sent_at_keeps_the_device_timestamp() -> None:
    event = only_event(
        "track",
        {
            "userId": "019mr8mf4r",
            "event": "Item Purchased",
            "properties": {"name": "Leap to Conclusions Mat", "revenue": 14.99},
            "context": {"ip": "24.5.68.47"},
            "timestamp": "2012-12-02T00:30:08.276Z",
        },
    )
    assert event.timestamp == pytest.approx(epoch("2012-12-02T00:30:08.276Z"))
    assert event.properties["revenue"] == 14.99
    assert len(event.message_id) == 32
    int(event.message_id, 16)


def test_missing_message_id_and_timestamp_are_filled_in() -> None:
    ids = iter(["first", "second"])
    parsed = parse_call(
        "track",
        body({"anonymousId": "a1", "event": "Signed Up"}),
        received_at=RECEIVED_AT,
        new_id=lambda: next(ids),
    )
    (event,) = parsed.events
    assert event.message_id == "first"
    assert event.timestamp == RECEIVED_AT
    assert event.contact_key == "a1"
    assert event.user_id is None
    assert parsed.write_key is None


def test_fresh_message_ids_differ() -> None:
    call = body({"userId": "u", "event": "Clicked"})
    first = parse_call("track", call, received_at=RECEIVED_AT).events[0]
    second = parse_call("track", call, received_at=RECEIVED_AT).events[0]
    assert first.message_id != second.message_id


def test_naive_timestamp_is_utc_and_offsets_are_honoured() -> None:
    naive = only_event("track", {"userId": "u", "event": "e", "timestamp": "2020-01-01T00:00:00"})
    offset = only_event(
        "track", {"userId": "u", "event": "e", "timestamp": "2020-01-01T05:30:00+05:30"}
    )
    expected = datetime(2020, 1, 1, tzinfo=UTC).timestamp()
    assert naive.timestamp == expected
    assert offset.timestamp == expected


def test_page_spec_example_folds_category_into_properties() -> None:
    event = only_event(
        "page",
        {
            "anonymousId": "507f191e810c19729de860ea",
            "userId": "97980cfea0067",
            "category": "Docs",
            "name": "Home",
            "properties": {"title": "Welcome | Initech", "url": "http://www.example.com"},
            "messageId": "022bb90c-bbac-11e4-8dfc-aa07a5b093db",
            "timestamp": "2015-02-23T22:28:55.111Z",
        },
    )
    assert event.type == "page"
    assert event.name == "Home"
    assert event.properties == {
        "title": "Welcome | Initech",
        "url": "http://www.example.com",
        "category": "Docs",
    }


def test_page_and_screen_without_name() -> None:
    page = only_event("page", {"userId": "019mr8mf4r"})
    screen = only_event("screen", {"userId": "019mr8mf4r"})
    assert (page.name, page.properties) == (None, {})
    assert (screen.type, screen.name) == ("screen", None)


def test_screen_spec_example() -> None:
    event = only_event(
        "screen",
        {
            "type": "screen",
            "name": "Home",
            "properties": {"Feed Type": "private"},
            "context": {"ip": "8.8.8.8", "device": {"type": "ios"}},
            "messageId": "022bb90c-bbac-11e4-8dfc-aa07a5b093db",
            "userId": "97980cfea0067",
        },
    )
    assert event.type == "screen"
    assert event.name == "Home"
    assert event.properties == {"Feed Type": "private"}
    assert event.context["device"] == {"type": "ios"}


def test_group_spec_example() -> None:
    event = only_event(
        "group",
        {
            "anonymousId": "507f191e810c19729de860ea",
            "groupId": "0e8c78ea9d97a7b8185e8632",
            "traits": {"name": "Initech", "industry": "Technology", "employees": 329},
            "type": "group",
            "userId": "97980cfea0067",
        },
    )
    assert event.group_id == "0e8c78ea9d97a7b8185e8632"
    assert event.traits["employees"] == 329
    assert event.contact_key == "97980cfea0067"


def test_alias_spec_example() -> None:
    event = only_event(
        "alias",
        {
            "anonymousId": "507f191e810c19729de860ea",
            "previousId": "39239-239239-239239-23923",
            "userId": "507f191e81",
            "messageId": "022bb90c-bbac-11e4-8dfc-aa07a5b093db",
            "sentAt": "2015-02-23T22:28:55.111Z",
            "timestamp": "2015-02-23T22:28:55.111Z",
            "version": "1.1",
        },
    )
    assert event.type == "alias"
    assert event.previous_id == "39239-239239-239239-23923"
    assert event.user_id == "507f191e81"
    assert event.contact_key == "507f191e81"


def test_numeric_ids_are_kept_as_text() -> None:
    group = only_event("group", {"userId": 42, "anonymousId": 7.5, "groupId": 1001})
    alias = only_event("alias", {"userId": "u", "previousId": 12})
    assert (group.user_id, group.anonymous_id, group.group_id) == ("42", "7.5", "1001")
    assert group.contact_key == "42"
    assert alias.previous_id == "12"


def test_empty_or_null_user_id_falls_back_to_anonymous_id() -> None:
    empty = only_event("track", {"userId": "", "anonymousId": "anon", "event": "e"})
    null = only_event("track", {"userId": None, "anonymousId": "anon", "event": "e"})
    assert empty.contact_key == null.contact_key == "anon"
    assert empty.user_id is None


def test_write_key_in_body() -> None:
    parsed = parse_call(
        "identify", body({"userId": "u", "writeKey": "wk_123"}), received_at=RECEIVED_AT
    )
    assert parsed.write_key == "wk_123"


def test_batch_spec_example_with_shared_context() -> None:
    parsed = parse_batch(
        body(
            {
                "batch": [
                    {
                        "type": "identify",
                        "userId": "019mr8mf4r",
                        "traits": {"email": "jake@yahoo.com", "name": "Jake Peterson", "age": 26},
                        "timestamp": "2012-12-02T00:30:12.984Z",
                    },
                    {
                        "type": "track",
                        "userId": "019mr8mf4r",
                        "event": "Song Played",
                        "properties": {"name": "Fallin for You", "artist": "Dierks Bentley"},
                        "timestamp": "2012-12-02T00:30:08.276Z",
                        "context": {"ip": "24.5.68.47"},
                    },
                    {
                        "type": "track",
                        "userId": "971mj8mk7p",
                        "event": "Song Played",
                        "properties": {"name": "Give Me Everything", "artist": "Pitbull"},
                        "timestamp": "2012-12-02T00:30:08.276Z",
                    },
                ],
                "context": {"device": {"type": "phone", "name": "Apple iPhone 6"}},
                "writeKey": "wk_batch",
            }
        ),
        received_at=RECEIVED_AT,
    )
    assert parsed.write_key == "wk_batch"
    assert [e.type for e in parsed.events] == ["identify", "track", "track"]
    assert [e.contact_key for e in parsed.events] == ["019mr8mf4r", "019mr8mf4r", "971mj8mk7p"]
    identify, first_song, second_song = parsed.events
    assert identify.traits["age"] == 26
    assert first_song.properties["artist"] == "Dierks Bentley"
    assert first_song.context == {
        "device": {"type": "phone", "name": "Apple iPhone 6"},
        "ip": "24.5.68.47",
    }
    assert second_song.context == {"device": {"type": "phone", "name": "Apple iPhone 6"}}
    assert identify.timestamp == pytest.approx(epoch("2012-12-02T00:30:12.984Z"))


def test_batch_of_every_call_type() -> None:
    parsed = parse_batch(
        body(
            {
                "batch": [
                    {"type": "identify", "userId": "u", "traits": {"plan": "pro"}},
                    {"type": "track", "userId": "u", "event": "Order Completed"},
                    {"type": "page", "anonymousId": "a", "name": "Pricing", "category": "Docs"},
                    {"type": "screen", "userId": "u", "name": "Home"},
                    {"type": "group", "userId": "u", "groupId": "g1"},
                    {"type": "alias", "userId": "u", "previousId": "a"},
                ]
            }
        ),
        received_at=RECEIVED_AT,
    )
    types = [e.type for e in parsed.events]
    assert types == ["identify", "track", "page", "screen", "group", "alias"]
    identify, track, page, screen, group, alias = parsed.events
    assert identify.traits == {"plan": "pro"}
    assert track.event == "Order Completed"
    assert (page.name, page.properties, page.contact_key) == ("Pricing", {"category": "Docs"}, "a")
    assert screen.name == "Home"
    assert group.group_id == "g1"
    assert alias.previous_id == "a"
    assert len({e.message_id for e in parsed.events}) == 6


def test_batch_sent_at_corrects_items_without_their_own() -> None:
    parsed = parse_batch(
        body(
            {
                "sentAt": "2020-01-01T00:00:10Z",
                "batch": [
                    {
                        "type": "track",
                        "userId": "u",
                        "event": "a",
                        "timestamp": "2020-01-01T00:00:00Z",
                    },
                    {
                        "type": "track",
                        "userId": "u",
                        "event": "b",
                        "timestamp": "2020-01-01T00:00:00Z",
                        "sentAt": "2020-01-01T00:00:01Z",
                    },
                    {"type": "track", "userId": "u", "event": "c"},
                ],
            }
        ),
        received_at=RECEIVED_AT,
    )
    batch_corrected, item_corrected, untimed = parsed.events
    assert batch_corrected.timestamp == RECEIVED_AT - 10
    assert item_corrected.timestamp == RECEIVED_AT - 1
    assert untimed.timestamp == RECEIVED_AT
