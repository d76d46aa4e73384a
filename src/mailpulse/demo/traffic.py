"""Simulated shop visitors sending Segment calls to a mailpulse server, at a bounded rate.

Visitors sign up, browse the built-in catalog, fill carts, and about 40 % of carts are abandoned
(some after starting checkout), so the example shop's journeys all have something to react to.
`_Shop` decides what happens next (seeded, no I/O); `TrafficGenerator` paces and sends it.

Given the admin key, the generator also keeps the server's `products` catalog: it puts the
built-in catalog there at start (with stock, some of it sold out), and now and then marks a
price down, sells stock or restocks a sold-out product (`_Merchandiser`). Mail then shows
today's price and stock rather than the event's, and the catalog derives `Price Dropped` and
`Back In Stock` for the journeys that fan them out.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from mailpulse import __version__

log = logging.getLogger(__name__)

SHOP_URL = "https://shop.example.com"
CURRENCY = "USD"
CART_ABANDON_SHARE = 0.40
# Of the abandoned carts, this share is left at checkout rather than before it.
CHECKOUT_ABANDON_SHARE = 0.35
MAX_RATE = 1000.0
_MAX_ACTIVE_VISITORS = 12
_MAX_CART_LINES = 3
# Of the shop's actions, this share is followed by a change to the catalog (with an admin key).
CATALOG_CHANGE_SHARE = 0.03
CATALOG_PATH = "/admin/catalogs/products/items"
# Of the visitors signing up, this share ticks the newsletter box next to this text.
NEWSLETTER_SHARE = 0.5
NEWSLETTER_WORDING = "Send me The Acme Letter: new arrivals and stories, every Friday."


@dataclass(frozen=True)
class Product:
    product_id: str
    name: str
    price: float
    slug: str

    @property
    def url(self) -> str:
        return f"{SHOP_URL}/products/{self.slug}"

    @property
    def image_url(self) -> str:
        return f"{SHOP_URL}/images/{self.slug}.jpg"

    def properties(self) -> dict[str, Any]:
        return {
            "product_id": self.product_id,
            "name": self.name,
            "price": self.price,
            "url": self.url,
            "image_url": self.image_url,
        }


CATALOG: tuple[Product, ...] = (
    Product("sku-1001", "Merino Crew Sweater", 89.00, "merino-crew-sweater"),
    Product("sku-1002", "Canvas Weekender Bag", 129.00, "canvas-weekender-bag"),
    Product("sku-1003", "Ceramic Pour-Over Set", 48.50, "ceramic-pour-over-set"),
    Product("sku-1004", "Trail Running Shoes", 139.95, "trail-running-shoes"),
    Product("sku-1005", "Linen Throw Blanket", 74.00, "linen-throw-blanket"),
    Product("sku-1006", "Insulated Water Bottle", 32.00, "insulated-water-bottle"),
    Product("sku-1007", "Leather Card Wallet", 45.00, "leather-card-wallet"),
    Product("sku-1008", "Wireless Desk Lamp", 64.99, "wireless-desk-lamp"),
    Product("sku-1009", "Organic Cotton Tee", 28.00, "organic-cotton-tee"),
    Product("sku-1010", "Cast Iron Skillet", 55.00, "cast-iron-skillet"),
    Product("sku-1011", "Wool Beanie", 24.00, "wool-beanie"),
    Product("sku-1012", "Noise-Cancelling Headphones", 249.00, "noise-cancelling-headphones"),
)

_FIRST_NAMES = (
    "Ada", "Bruno", "Chloé", "Dmitri", "Elena", "Farah", "Gustav", "Hana", "Ines", "Jonas",
    "Kenji", "Lucía", "Mateo", "Nadia", "Oskar", "Priya", "Quinn", "Rosa", "Sami", "Tara",
)  # fmt: skip
_LAST_NAMES = (
    "Almeida", "Becker", "Chen", "Dubois", "Eriksen", "Fischer", "García", "Haddad", "Ito",
    "Jansen", "Kowalski", "Larsen", "Moreau", "Nakamura", "Okafor", "Petrov", "Rossi", "Silva",
)  # fmt: skip
_EMAIL_DOMAINS = ("example.com", "example.org", "example.net")
_PLANS = ("free", "free", "starter", "pro")
_TIMEZONES = (
    "Europe/Berlin", "Europe/London", "America/New_York", "America/Los_Angeles",
    "America/Sao_Paulo", "Asia/Tokyo", "Asia/Kolkata", "Australia/Sydney",
)  # fmt: skip
_USER_AGENTS = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Version/17.5 Safari/605.1",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
    "Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0",
)


@dataclass
class _Visitor:
    user_id: str
    traits: dict[str, Any]
    user_agent: str
    stage: str = "browsing"  # browsing → cart → checkout; leaving drops the visitor
    viewed: list[Product] = field(default_factory=list)
    cart: dict[str, tuple[Product, int]] = field(default_factory=dict)
    cart_id: str = ""
    outcome: str = ""  # for a cart: "complete", "abandon_cart" or "abandon_checkout"


Call = tuple[str, dict[str, Any]]


class _Shop:
    """Decides each next visitor action as one Segment HTTP call: (path, JSON body)."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._visitors: list[_Visitor] = []
        self._orders = 0

    def next_call(self) -> Call:
        rng = self._rng
        wants_new = len(self._visitors) < 3 or rng.random() < 0.2
        if wants_new and len(self._visitors) < _MAX_ACTIVE_VISITORS:
            return self._sign_up()
        # Shoppers with a cart act quickly, as they do on a real site; it also lets most
        # completed orders land before the demo's short cart-abandonment wait runs out.
        shopping = [v for v in self._visitors if v.stage != "browsing"]
        visitor = rng.choice(shopping if shopping and rng.random() < 0.5 else self._visitors)
        if rng.random() < 0.04:
            return self._change_plan(visitor)
        if visitor.stage == "browsing":
            return self._browse(visitor)
        if visitor.stage == "cart":
            return self._shop_cart(visitor)
        return self._check_out(visitor)

    def _sign_up(self) -> Call:
        rng = self._rng
        first, last = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
        tag = f"{rng.getrandbits(24):06x}"
        local = f"{first}.{last}.{tag}".lower().encode("ascii", "ignore").decode()
        traits = {
            "email": f"{local}@{rng.choice(_EMAIL_DOMAINS)}",
            "first_name": first,
            "last_name": last,
            "plan": rng.choice(_PLANS),
            "timezone": rng.choice(_TIMEZONES),
            "created_at": _now_iso(),
        }
        visitor = _Visitor(f"user_{tag}", traits, rng.choice(_USER_AGENTS))
        self._visitors.append(visitor)
        identify = {"type": "identify", **self._common(visitor), "traits": traits}
        signed_up = {
            "type": "track",
            **self._common(visitor),
            "event": "Signed Up",
            "properties": {"plan": traits["plan"], "source": "web"},
        }
        calls = [identify, signed_up]
        if rng.random() < NEWSLETTER_SHARE:
            # The sign-up form's newsletter box, ticked: the consent as shown, which mailpulse
            # asks the visitor to confirm by email (the newsletter is a double opt-in topic).
            subscribed = {
                "type": "track",
                **self._common(visitor),
                "event": "Subscribed",
                "properties": {
                    "topic": "newsletter",
                    "wording": NEWSLETTER_WORDING,
                    "source": "signup_form",
                },
            }
            calls.append(subscribed)
        return "/v1/batch", {"batch": calls}

    def _change_plan(self, visitor: _Visitor) -> Call:
        visitor.traits["plan"] = self._rng.choice(
            [p for p in _PLANS if p != visitor.traits["plan"]]
        )
        return "/v1/identify", {**self._common(visitor), "traits": dict(visitor.traits)}

    def _browse(self, visitor: _Visitor) -> Call:
        rng = self._rng
        if visitor.viewed and rng.random() < 0.45:
            visitor.stage = "cart"
            visitor.cart_id = f"cart_{rng.getrandbits(32):08x}"
            roll = rng.random()
            if roll >= CART_ABANDON_SHARE:
                visitor.outcome = "complete"
            elif roll < CART_ABANDON_SHARE * CHECKOUT_ABANDON_SHARE:
                visitor.outcome = "abandon_checkout"
            else:
                visitor.outcome = "abandon_cart"
            return self._add_to_cart(visitor, visitor.viewed[-1])
        if len(visitor.viewed) >= 2 and rng.random() < 0.15:
            # Browse abandonment: viewed things, bought nothing, gone.
            return self._leave(visitor, self._view(visitor))
        return self._view(visitor)

    def _shop_cart(self, visitor: _Visitor) -> Call:
        rng = self._rng
        if len(visitor.cart) < _MAX_CART_LINES and rng.random() < 0.3:
            return self._add_to_cart(visitor, rng.choice(CATALOG))
        if visitor.outcome == "abandon_cart":
            return self._leave(visitor, self._view(visitor))
        visitor.stage = "checkout"
        return self._track(
            visitor,
            "Checkout Started",
            {"cart_id": visitor.cart_id, **self._cart_properties(visitor, "value")},
        )

    def _check_out(self, visitor: _Visitor) -> Call:
        if visitor.outcome == "abandon_checkout":
            return self._leave(visitor, self._view(visitor))
        self._orders += 1
        order = self._cart_properties(visitor, "total")
        order_id = f"A{10000 + self._orders}-{self._rng.getrandbits(16):04X}"
        call = self._track(
            visitor,
            "Order Completed",
            {"order_id": order_id, "cart_id": visitor.cart_id, "revenue": order["total"], **order},
        )
        visitor.stage, visitor.cart, visitor.outcome, visitor.viewed = "browsing", {}, "", []
        if self._rng.random() < 0.5:
            return self._leave(visitor, call)
        return call

    def _view(self, visitor: _Visitor) -> Call:
        product = self._rng.choice(CATALOG)
        visitor.viewed.append(product)
        return self._track(
            visitor, "Product Viewed", {**product.properties(), "currency": CURRENCY}
        )

    def _add_to_cart(self, visitor: _Visitor, product: Product) -> Call:
        _, quantity = visitor.cart.get(product.product_id, (product, 0))
        visitor.cart[product.product_id] = (product, quantity + 1)
        return self._track(
            visitor,
            "Product Added",
            {
                "cart_id": visitor.cart_id,
                **product.properties(),
                "quantity": 1,
                **self._cart_properties(visitor, "cart_total"),
            },
        )

    def _cart_properties(self, visitor: _Visitor, total_name: str) -> dict[str, Any]:
        lines = [
            {**product.properties(), "quantity": quantity}
            for product, quantity in visitor.cart.values()
        ]
        total = round(sum(line["price"] * line["quantity"] for line in lines), 2)
        return {total_name: total, "currency": CURRENCY, "products": lines}

    def _leave(self, visitor: _Visitor, last_call: Call) -> Call:
        self._visitors.remove(visitor)
        return last_call

    def _track(self, visitor: _Visitor, event: str, properties: dict[str, Any]) -> Call:
        return "/v1/track", {**self._common(visitor), "event": event, "properties": properties}

    def _common(self, visitor: _Visitor) -> dict[str, Any]:
        return {
            "userId": visitor.user_id,
            "messageId": str(uuid.UUID(int=self._rng.getrandbits(128), version=4)),
            "timestamp": _now_iso(),
            "context": {
                "library": {"name": "mailpulse-demo", "version": __version__},
                "userAgent": visitor.user_agent,
                "timezone": visitor.traits["timezone"],
                "locale": "en-US",
            },
        }


class _Merchandiser:
    """The shop's catalog as the server should have it, and what changes in it next: each a
    call to the catalog admin API (path, JSON body, HTTP method)."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._stock = {p.product_id: rng.choice((0, 2, 4, 8, 12, 25)) for p in CATALOG}
        self._price = {p.product_id: p.price for p in CATALOG}

    def fields(self, product: Product) -> dict[str, Any]:
        return {
            "name": product.name,
            "price": self._price[product.product_id],
            "stock": self._stock[product.product_id],
            "url": product.url,
            "image_url": product.image_url,
        }

    def seed(self) -> tuple[str, Any, str]:
        items = [{"id": p.product_id, "fields": self.fields(p)} for p in CATALOG]
        return CATALOG_PATH, items, "POST"

    def next_change(self) -> tuple[str, Any, str]:
        rng = self._rng
        product = rng.choice(CATALOG)
        pid = product.product_id
        if self._stock[pid] == 0:
            self._stock[pid] = rng.choice((5, 10, 20))  # back in stock
        elif rng.random() < 0.5:
            # A markdown; once half off, back to the list price (a rise derives nothing).
            marked = round(self._price[pid] * rng.choice((0.8, 0.85, 0.9)), 2)
            self._price[pid] = product.price if marked < product.price / 2 else marked
        else:
            self._stock[pid] = max(0, self._stock[pid] - rng.randint(1, 4))  # sold
        return f"{CATALOG_PATH}/{pid}", self.fields(product), "PUT"


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _Pacer:
    """Spaces actions at most `rate` per second: action k lands at a random point of its own
    1/rate-long slot, and a late action pushes later slots back instead of bunching them."""

    def __init__(self, rate: float, rng: random.Random) -> None:
        self._period = 1.0 / rate
        self._rng = rng
        self._next_slot = float("-inf")

    def delay(self, now: float) -> float:
        slot_start = max(self._next_slot, now)
        self._next_slot = slot_start + self._period
        return slot_start + self._rng.random() * self._period - now


class TrafficGenerator:
    """Sends simulated shop visitors' Segment calls to `{base_url}/v1/...` with `write_key`.

    At most `rate` calls per second (on average exactly that, with jitter); one call at a time.
    Failed calls are counted in `errors` and logged once per distinct reason, never raised.
    """

    def __init__(
        self,
        base_url: str,
        write_key: str,
        *,
        rate: float = 2.0,
        seed: int | None = None,
        admin_key: str | None = None,
    ) -> None:
        if not 0 < rate <= MAX_RATE:
            raise ValueError(f"rate must be above 0 and at most {MAX_RATE:g} per second: {rate}")
        self.base_url = base_url
        self.rate = rate
        self.actions_sent = 0
        self.catalog_updates = 0  # calls to the catalog admin API (with `admin_key` only)
        self.errors = 0
        self._write_key = write_key
        self._admin_key = admin_key
        rng = random.Random(seed)
        self._shop = _Shop(random.Random(rng.getrandbits(64)))
        self._pacer = _Pacer(rate, random.Random(rng.getrandbits(64)))
        self._merchandiser = _Merchandiser(random.Random(rng.getrandbits(64)))
        self._changes = random.Random(rng.getrandbits(64))
        self._reasons_logged: set[str] = set()

    async def run(self, stop: asyncio.Event) -> None:
        """Send actions until `stop` is set."""
        async with self._client() as client:
            await self._update_catalog(client, self._merchandiser.seed())
            loop = asyncio.get_running_loop()
            while not await _set_within(stop, self._pacer.delay(loop.time())):
                await self._act(client)

    async def run_for(self, n_actions: int) -> None:
        """Send exactly `n_actions` actions, paced like `run`."""
        async with self._client() as client:
            await self._update_catalog(client, self._merchandiser.seed())
            loop = asyncio.get_running_loop()
            for _ in range(n_actions):
                await asyncio.sleep(self._pacer.delay(loop.time()))
                await self._act(client)

    async def _act(self, client: httpx.AsyncClient) -> None:
        await self._send(client, self._shop.next_call())
        if self._admin_key and self._changes.random() < CATALOG_CHANGE_SHARE:
            await self._update_catalog(client, self._merchandiser.next_change())

    async def _update_catalog(self, client: httpx.AsyncClient, call: tuple[str, Any, str]) -> None:
        if not self._admin_key:
            return
        path, body, method = call
        self.catalog_updates += 1
        headers = {"Authorization": f"Bearer {self._admin_key}"}
        try:
            # auth=None: the admin key, not the write key the client sends by default.
            response = await client.request(method, path, json=body, headers=headers, auth=None)
        except httpx.HTTPError as exc:
            self._failed(f"{path}: {type(exc).__name__}: {exc}")
            return
        if not response.is_success:
            self._failed(f"{method} {path}: HTTP {response.status_code}: {_reason(response)}")

    def _client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.base_url,
            auth=httpx.BasicAuth(self._write_key, ""),
            timeout=httpx.Timeout(10.0),
            headers={"User-Agent": f"mailpulse-demo-traffic/{__version__}"},
        )

    async def _send(self, client: httpx.AsyncClient, call: Call) -> None:
        path, body = call
        sent_at = _now_iso()
        if "batch" in body:
            body = {"batch": [{**item, "sentAt": sent_at} for item in body["batch"]]}
        else:
            body = {**body, "sentAt": sent_at}
        self.actions_sent += 1
        try:
            response = await client.post(path, json=body)
        except httpx.HTTPError as exc:
            self._failed(f"{path}: {type(exc).__name__}: {exc}")
            return
        if not response.is_success:
            self._failed(f"{path}: HTTP {response.status_code}: {_reason(response)}")

    def _failed(self, reason: str) -> None:
        self.errors += 1
        if reason not in self._reasons_logged:
            self._reasons_logged.add(reason)
            log.warning("demo traffic call failed (logged once per reason): %s", reason)


async def _set_within(event: asyncio.Event, seconds: float) -> bool:
    # wait_for with a zero timeout gives up before the wait even starts, set event or not.
    if event.is_set():
        return True
    try:
        await asyncio.wait_for(event.wait(), seconds)
    except TimeoutError:
        return False
    return True


def _reason(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200] or response.reason_phrase
    if isinstance(body, dict):
        for key in ("detail", "error", "message", "reason"):
            if key in body:
                return str(body[key])[:200]
    return str(body)[:200]
