"""Opens and clicks made by machines, not people: the rules, as data, and where each comes from.

A flagged open or click is still recorded (`machine: true` and the `reason`), and counted apart;
the human open and click rates, A/B tests and segments leave it out. Each rule below names its
source; none of them is certain, so they stay few and plain.

Opens:
- Apple Mail Privacy Protection fetches every remote image of a message through Apple's proxy
  when the message reaches the device, opened or not (Apple: "Mail Privacy Protection ...
  prevents senders from knowing when they open an email"). Its fetches say `Mozilla/5.0` and
  nothing more (SparkPost/Bird, "4 insights on iOS 15 Mail Privacy Protection", 2021), and come
  from the egress addresses of iCloud Private Relay, whose infrastructure it shares (Word to the
  Wise, "Apple MPP reporting and geolocation", 2021). Apple publishes those ranges as a CSV
  (developer.apple.com, "Prepare your network or web server for iCloud Private Relay"); none
  are built in here, as they change: name the downloaded file in `[tracking]
  apple_proxy_ranges` to use them.
- An ESP's own verdict, when mail goes out through one that reports opens by webhook
  (mailpulse.feedback.webhooks): SendGrid flags the opens Apple's proxy made
  (`sg_machine_open`, Twilio SendGrid's Event Webhook reference). Its other opens, and every
  other ESP's, are judged by the rules here from the user agent and IP it reports.
- Gmail's image proxy (`GoogleImageProxy` in the user agent) fetches a message's images when
  the recipient opens it, and caches them after: its first fetch is a person opening the
  message, so it counts as a human open (later opens of the same message are not seen).

Clicks:
- A click within `[tracking] scanner_window` (10 s by default) of the moment the message was
  made is a security gateway scanning the links on the way in; people do not read that fast
  (the click audits of Suped and others flag clicks within 5 s of delivery).
- A HEAD request fetches no page: a link checker, opens and clicks alike.
- Several links of one message followed within `BURST_SECONDS`: a scanner following every link
  (Marketo, Validity and others report "clicks" on every link at once). Every click after the
  first is flagged here; the fold then takes the first back out of the human count.
- User agents of security scanners, link-preview services and HTTP libraries, named by the
  guides to bot clicks (Suped, "How can I identify bot user agents in my email click data";
  the live-direct-marketing field guide to security-scanner clicks): `SCANNER_AGENTS`. An empty
  user agent is no browser either.
"""

from __future__ import annotations

import bisect
import ipaddress
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mailpulse.errors import ProjectError

OPEN, CLICK = "open", "click"
BURST_SECONDS = 1.0
APPLE_PROXY_AGENT = "Mozilla/5.0"
GOOGLE_IMAGE_PROXY = "GoogleImageProxy"
# (pattern, what fetched, applies to): searched in the user agent, case-insensitive.
SCANNER_AGENTS: tuple[tuple[str, str, frozenset[str]], ...] = (
    (r"barracuda", "Barracuda link protection", frozenset({OPEN, CLICK})),
    (r"proofpoint|urldefense", "Proofpoint URL Defense", frozenset({OPEN, CLICK})),
    (r"mimecast", "Mimecast URL Protect", frozenset({OPEN, CLICK})),
    (r"ciscosecureemail|ironport", "Cisco Secure Email", frozenset({OPEN, CLICK})),
    (r"bingpreview", "Microsoft link preview", frozenset({OPEN, CLICK})),
    (r"slackbot-linkexpanding|facebookexternalhit", "a link preview", frozenset({CLICK})),
    (r"headlesschrome|phantomjs", "a headless browser", frozenset({OPEN, CLICK})),
    (
        r"python-requests|python-httpx|python-urllib|aiohttp|\bcurl/|\bwget/|go-http-client"
        r"|apache-httpclient|\bjava/|libwww-perl",
        "an HTTP library",
        frozenset({OPEN, CLICK}),
    ),
)
_SCANNERS = [(re.compile(p, re.IGNORECASE), what, kinds) for p, what, kinds in SCANNER_AGENTS]
_REMEMBERED_MESSAGES = 10_000  # messages whose last clicks are kept for the burst rule


# The rules, by the short names events carry (`rule`).
APPLE_AGENT, APPLE_ADDRESS = "apple-proxy-agent", "apple-proxy-address"
HEAD, NO_AGENT, SCANNER_AGENT = "head", "no-user-agent", "scanner-agent"
TOO_SOON, BURST = "too-soon", "burst"
ESP_FLAG = "esp-flag"


@dataclass(frozen=True)
class Verdict:
    """Whether a person or a machine did it; for a machine, which rule says so and why."""

    machine: bool
    rule: str = ""
    reason: str = ""


HUMAN = Verdict(False)


class AddressRanges:
    """IP ranges, as sorted, merged intervals: a look-up is a binary search."""

    def __init__(self, networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> None:
        self._starts: dict[int, list[int]] = {4: [], 6: []}
        self._ends: dict[int, list[int]] = {4: [], 6: []}
        for version in (4, 6):
            mine = [n for n in networks if n.version == version]
            for net in ipaddress.collapse_addresses(mine):  # type: ignore[type-var]
                self._starts[version].append(int(net.network_address))
                self._ends[version].append(int(net.broadcast_address))

    def __len__(self) -> int:
        return len(self._starts[4]) + len(self._starts[6])

    def __contains__(self, address: object) -> bool:
        try:
            ip = ipaddress.ip_address(str(address))
        except ValueError:
            return False
        at = bisect.bisect_right(self._starts[ip.version], int(ip)) - 1
        return at >= 0 and int(ip) <= self._ends[ip.version][at]

    @classmethod
    def load(cls, path: Path) -> AddressRanges:
        """A list of ranges, one a line, the range first (Apple's egress CSV, RFC 8805:
        `prefix,country,region,city,`); blank and `#` lines are skipped. A line that is not a
        range stops the load with its line."""
        networks = []
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise ProjectError(path, f"cannot read the address ranges: {exc}") from exc
        for number, line in enumerate(lines, start=1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            written = line.split(",", 1)[0].strip()
            try:
                networks.append(ipaddress.ip_network(written, strict=False))
            except ValueError:
                raise ProjectError(
                    path,
                    f"{written!r} is not an address range: each line starts with one, "
                    "e.g. 172.224.224.0/27",
                    number,
                ) from None
        return cls(networks)


@dataclass(frozen=True)
class MachineSettings:
    """`[tracking]` scanner_window (seconds) and apple_proxy_ranges (the file), as loaded."""

    scanner_window: float = 10.0
    apple_ranges: Path | None = None


class MachineRules:
    """Tells opens and clicks made by machines from people's (see the module docstring)."""

    @classmethod
    def from_settings(
        cls, settings: MachineSettings, clock: Callable[[], float] = time.time
    ) -> MachineRules:
        """The rules a project sets; a ranges file that cannot be read raises ProjectError."""
        ranges = (
            None if settings.apple_ranges is None else AddressRanges.load(settings.apple_ranges)
        )
        return cls(settings.scanner_window, ranges, clock)

    def __init__(
        self,
        scanner_window: float = 10.0,
        apple_ranges: AddressRanges | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._scanner_window = scanner_window
        self._apple = apple_ranges
        self._clock = clock
        # Send key → (when, where) of its clicks lately seen by this process.
        self._recent: OrderedDict[str, list[tuple[float, str]]] = OrderedDict()

    def open(self, *, method: str, user_agent: str, ip: str) -> Verdict:
        common = self._common(OPEN, method, user_agent)
        if common is not None:
            return common
        if user_agent.strip() == APPLE_PROXY_AGENT:
            return Verdict(True, APPLE_AGENT, "Apple Mail Privacy Protection: its proxy's agent")
        if self._apple is not None and ip in self._apple:
            return Verdict(True, APPLE_ADDRESS, "Apple Mail Privacy Protection: Apple's proxy")
        return HUMAN

    def click(
        self,
        *,
        method: str,
        user_agent: str,
        ip: str,
        key: str,
        url: str,
        sent_at: float,
        at: float | None = None,
    ) -> Verdict:
        """`at`: when the click was made, if not now (an ESP reports it after)."""
        now = self._clock() if at is None else at
        burst = self._note_click(key, url, now)
        common = self._common(CLICK, method, user_agent)
        if common is not None:
            return common
        if now - sent_at < self._scanner_window:
            return Verdict(True, TOO_SOON, f"clicked {now - sent_at:.0f} s after it was sent")
        if burst:
            return Verdict(True, BURST, "another link of the message was followed just before")
        return HUMAN

    def _common(self, kind: str, method: str, user_agent: str) -> Verdict | None:
        if method == "HEAD":
            return Verdict(True, HEAD, "a HEAD request fetches no page")
        if not user_agent.strip():
            return Verdict(True, NO_AGENT, "no user agent")
        if GOOGLE_IMAGE_PROXY in user_agent:
            return HUMAN  # opened in Gmail: its proxy fetches when the message is opened
        for pattern, what, kinds in _SCANNERS:
            if kind in kinds and pattern.search(user_agent):
                return Verdict(True, SCANNER_AGENT, f"the user agent of {what}")
        return None

    def _note_click(self, key: str, url: str, now: float) -> bool:
        """Remember this click; whether another link of the message was followed just now."""
        clicks = self._recent.pop(key, [])
        clicks = [(at, seen) for at, seen in clicks if now - at <= BURST_SECONDS]
        burst = any(seen != url for _, seen in clicks)
        clicks.append((now, url))
        self._recent[key] = clicks
        while len(self._recent) > _REMEMBERED_MESSAGES:
            self._recent.popitem(last=False)
        return burst
