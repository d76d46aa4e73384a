"""Telling opens and clicks made by machines from people's: each rule, and the address ranges."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailpulse.errors import ProjectError
from mailpulse.feedback.machines import (
    APPLE_ADDRESS,
    APPLE_AGENT,
    BURST,
    HEAD,
    NO_AGENT,
    SCANNER_AGENT,
    TOO_SOON,
    AddressRanges,
    MachineRules,
)

SAFARI = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
)
GMAIL = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
SENT_AT = 1_760_000_000.0


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def rules(at: float = SENT_AT + 600, ranges: AddressRanges | None = None) -> MachineRules:
    return MachineRules(scanner_window=10.0, apple_ranges=ranges, clock=Clock(at))


def click(r: MachineRules, url: str = "https://shop.example/a", **kw: str) -> str:
    args = {"method": "GET", "user_agent": SAFARI, "ip": "198.51.100.7", **kw}
    verdict = r.click(key="k1", url=url, sent_at=SENT_AT, **args)
    return verdict.rule if verdict.machine else "human"


def test_a_person_clicking_later_in_a_browser_is_a_person() -> None:
    assert click(rules()) == "human"


@pytest.mark.parametrize(
    ("user_agent", "rule"),
    [
        ("", NO_AGENT),
        ("   ", NO_AGENT),
        ("Barracuda Sentinel (EE)", SCANNER_AGENT),
        ("Mozilla/5.0 (compatible; proofpoint)", SCANNER_AGENT),
        ("Mozilla/5.0 ... BingPreview/1.0b", SCANNER_AGENT),
        ("python-requests/2.31", SCANNER_AGENT),
        ("python-httpx/0.27.0", SCANNER_AGENT),
        ("curl/8.5.0", SCANNER_AGENT),
        ("Mozilla/5.0 (X11; Linux x86_64) HeadlessChrome/120.0", SCANNER_AGENT),
    ],
)
def test_scanners_and_libraries_are_machines(user_agent: str, rule: str) -> None:
    assert click(rules(), user_agent=user_agent) == rule


def test_a_head_request_is_a_machine() -> None:
    assert click(rules(), method="HEAD") == HEAD
    assert rules().open(method="HEAD", user_agent=SAFARI, ip="1.2.3.4").rule == HEAD


def test_a_click_within_the_scanner_window_of_the_send_is_a_machine() -> None:
    assert click(rules(at=SENT_AT + 3)) == TOO_SOON
    assert click(rules(at=SENT_AT + 11)) == "human"


def test_several_links_of_one_message_followed_at_once_are_a_scanner() -> None:
    clock = Clock(SENT_AT + 600)
    r = MachineRules(scanner_window=10.0, clock=clock)
    assert click(r, "https://shop.example/a") == "human"
    clock.now += 0.4
    assert click(r, "https://shop.example/b") == BURST
    assert click(r, "https://shop.example/c") == BURST
    clock.now += 5
    assert click(r, "https://shop.example/d") == "human"
    clock.now += 0.2
    assert click(r, "https://shop.example/d") == "human"  # the same link again: a person


def test_opens_through_apples_proxy_are_machines_and_gmails_are_people() -> None:
    r = rules()
    assert r.open(method="GET", user_agent="Mozilla/5.0", ip="1.2.3.4").rule == APPLE_AGENT
    assert not r.open(method="GET", user_agent=GMAIL, ip="66.249.84.1").machine
    assert not r.open(method="GET", user_agent=SAFARI, ip="1.2.3.4").machine


def test_opens_from_apples_published_ranges_are_machines(tmp_path: Path) -> None:
    csv = tmp_path / "egress.csv"
    # Addresses reserved for documentation (RFC 5737, RFC 3849), in Apple's file's shape.
    csv.write_text(
        "# prefix,country,region,city\n192.0.2.0/24,US,US-CA,Cupertino,\n\n2001:db8::/32,US,,,\n"
    )
    r = rules(ranges=AddressRanges.load(csv))
    assert r.open(method="GET", user_agent=SAFARI, ip="192.0.2.77").rule == APPLE_ADDRESS
    assert r.open(method="GET", user_agent=SAFARI, ip="2001:db8::1").rule == APPLE_ADDRESS
    assert not r.open(method="GET", user_agent=SAFARI, ip="198.51.100.1").machine
    assert not r.open(method="GET", user_agent=SAFARI, ip="not an address").machine


def test_a_ranges_file_with_a_bad_line_names_it(tmp_path: Path) -> None:
    csv = tmp_path / "egress.csv"
    csv.write_text("192.0.2.0/24,US\nnot-a-range,US\n")
    with pytest.raises(ProjectError) as err:
        AddressRanges.load(csv)
    assert err.value.line == 2 and "not-a-range" in str(err.value)


networks = st.builds(
    lambda a, b, c, size: f"{a}.{b}.{c}.0/{size}",
    st.integers(1, 223),
    st.integers(0, 255),
    st.integers(0, 255),
    st.integers(16, 30),
)


@given(st.lists(networks, min_size=1, max_size=20), st.ip_addresses(v=4))
def test_a_range_look_up_agrees_with_the_networks(written: list[str], address) -> None:
    nets = [ipaddress.ip_network(n, strict=False) for n in written]
    ranges = AddressRanges(nets)
    assert (str(address) in ranges) == any(address in n for n in nets)
    for net in nets:
        assert str(net.network_address) in ranges and str(net.broadcast_address) in ranges
