"""A/B tests on broadcasts: the definition, and who gets which variant.

```json
"ab_test": {"variants": [{"id": "a"}, {"id": "b", "subject": "Last chance: 30% off"},
                         {"id": "c", "template": "sale-alt"}],
            "test_share": 0.2, "wait": "4h", "winner_by": "opens",
            "confidence": 0.95, "if_undecided": "first"}
```

A variant sends the campaign with its own subject line (Jinja, like a template's) and/or its
own template. The test share of the audience gets the variants, evenly; `wait` after the last
of those sends, the variant with the best rate of `winner_by` (opens, clicks, or conversions:
the `conversion.event` done within `conversion.within` of the send, `wait` when not given)
wins if a two-proportion z-test tells it apart from every other at `confidence`, and goes to
the rest of the audience. Undecided, the rest gets the first variant (`first`), all of them
evenly (`split`), or waits for a person to pick one (`hold`).

Who is in the test share and which variant they get derive from the campaign and contact ids
alone, so reading a page again (a crash, a resume) always gives the same answer.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection, Sequence

import msgspec

from mailpulse.audience.segments.located import Located
from mailpulse.render.subject import SubjectError, subject_template
from mailpulse.yamlnodes import suggest

OPENS, CLICKS, CONVERSIONS = "opens", "clicks", "conversions"
SENT = "sent"
# What each contact of the test share is counted in, at most once each.
FIGURES = (SENT, OPENS, CLICKS, CONVERSIONS)
FIRST, SPLIT, HOLD = "first", "split", "hold"
# Where an A/B-tested campaign stands: sending the test share, waiting for the decision,
# sending the rest of the audience.
TEST, WAIT, REST = "test", "wait", "rest"

_VARIANT_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")
_KEYS = ("variants", "test_share", "wait", "winner_by", "conversion", "confidence", "if_undecided")
_VARIANT_KEYS = ("id", "subject", "template")
_EXAMPLE = (
    '{"variants": [{"id": "a"}, {"id": "b", "subject": "Last chance"}], "test_share": 0.2, '
    '"wait": "4h", "winner_by": "opens"}'
)
_VARIANT_EXAMPLE = '{"id": "b", "subject": "Last chance: 30% off"}'
_CONVERSION_EXAMPLE = '{"event": "Order Completed", "within": "3d"}'
MAX_VARIANTS = 5


class Variant(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    id: str
    subject: str | None = None  # None: the template's own
    template: str | None = None  # None: the campaign's


class Conversion(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """An event that counts as a conversion: within `within` seconds of the recipient's send
    for an A/B test, of their click for attribution ([conversions], mailpulse.project), whose
    `revenue` property holds the amount."""

    event: str
    within: float
    revenue: str = "revenue"


class AbTest(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    variants: tuple[Variant, ...]
    test_share: float  # of the audience, in (0, 1]
    wait: float  # seconds from the last test send to the decision
    winner_by: str  # opens, clicks or conversions
    conversion: Conversion | None = None
    confidence: float = 0.95
    if_undecided: str = FIRST

    @property
    def variant_ids(self) -> list[str]:
        return [v.id for v in self.variants]

    def variant(self, variant_id: str) -> Variant | None:
        return next((v for v in self.variants if v.id == variant_id), None)


def _draws(campaign_id: str, contact_id: str) -> tuple[float, int]:
    """Two independent draws for one recipient, the same on every run: a share in [0, 1) and
    a number to pick a variant by."""
    digest = hashlib.blake2b(f"{campaign_id}\0{contact_id}".encode(), digest_size=16).digest()
    return int.from_bytes(digest[:8]) / 2**64, int.from_bytes(digest[8:])


def variant_in_test(campaign_id: str, contact_id: str, ab_test: AbTest) -> str | None:
    """The variant a contact gets in the test; None when it is not in the test share (it gets
    what the decision says)."""
    share, pick = _draws(campaign_id, contact_id)
    if share >= ab_test.test_share:
        return None
    return ab_test.variants[pick % len(ab_test.variants)].id


def rest_variant(campaign_id: str, contact_id: str, among: Sequence[str]) -> str:
    """The variant a contact outside the test share gets: the one decided on, or each of
    `among` for an even part of the rest."""
    return among[_draws(campaign_id, contact_id)[1] % len(among)]


def ab_test_from_data(
    at: Located, templates: Collection[str], conversion: Conversion | None = None
) -> AbTest:
    """The A/B test at `at`; fails there (with a JSON Pointer) on the first mistake.
    `conversion`: what counts as one when the test names none (the project's)."""
    entries = at.mapping("ab_test", _KEYS, _EXAMPLE)
    for key in ("variants", "test_share", "wait", "winner_by"):
        if key not in entries or entries[key].is_null:
            at.fail(f"missing `{key}` in ab_test: e.g. {_EXAMPLE}")
    variants = _variants(entries["variants"], templates)
    test_share = _number(entries["test_share"], "test_share")
    if not 0 < test_share <= 1:
        entries["test_share"].fail(
            f"test_share is the part of the audience tested, more than 0 and at most 1 "
            f"(0.2 for a fifth), not {test_share}"
        )
    wait = entries["wait"].duration("wait", positive=True)
    winner_by = entries["winner_by"].choice("winner_by", (OPENS, CLICKS, CONVERSIONS))
    if "conversion" in entries:
        conversion = _conversion(entries["conversion"], default_within=wait)
    elif winner_by == CONVERSIONS and conversion is None:
        entries["winner_by"].fail(
            f"winner_by conversions needs the event that counts as one: add "
            f'"conversion": {_CONVERSION_EXAMPLE} (or [conversions] to mailpulse.toml)'
        )
    confidence = 0.95
    if "confidence" in entries:
        confidence = _number(entries["confidence"], "confidence")
        if not 0 < confidence < 1:
            entries["confidence"].fail(
                f"confidence is more than 0 and less than 1 (0.95 for 95 %), not {confidence}"
            )
    if_undecided = FIRST
    if "if_undecided" in entries:
        if_undecided = entries["if_undecided"].choice("if_undecided", (FIRST, SPLIT, HOLD))
    return AbTest(
        variants=variants,
        test_share=test_share,
        wait=wait,
        winner_by=winner_by,
        conversion=conversion,
        confidence=confidence,
        if_undecided=if_undecided,
    )


def _variants(at: Located, templates: Collection[str]) -> tuple[Variant, ...]:
    items = at.items("variants", f"[{{'id': 'a'}}, {_VARIANT_EXAMPLE}]")
    if not 2 <= len(items) <= MAX_VARIANTS:
        at.fail(f"an A/B test has 2 to {MAX_VARIANTS} variants, not {len(items)}")
    variants: list[Variant] = []
    for item in items:
        entries = item.mapping("a variant", _VARIANT_KEYS, _VARIANT_EXAMPLE)
        if "id" not in entries:
            item.fail(f"missing `id` in a variant: e.g. {_VARIANT_EXAMPLE}")
        variant_id = entries["id"].text("id")
        if not _VARIANT_ID.fullmatch(variant_id):
            entries["id"].fail("a variant id is 1 to 32 letters, digits, '_' or '-'")
        if variant_id in (v.id for v in variants):
            entries["id"].fail(f"two variants are named {variant_id!r}: give each its own id")
        subject = None
        if "subject" in entries:
            subject = entries["subject"].text("subject")
            try:
                subject_template(subject)
            except SubjectError as error:
                entries["subject"].fail(f"the subject line does not compile: {error}")
        template = None
        if "template" in entries:
            template = entries["template"].text("template")
            if template not in templates:
                entries["template"].fail(
                    f"no template named {template!r}: {suggest(template, templates)}"
                )
        variants.append(Variant(id=variant_id, subject=subject, template=template))
    return tuple(variants)


def _conversion(at: Located, *, default_within: float) -> Conversion:
    entries = at.mapping("conversion", ("event", "within"), _CONVERSION_EXAMPLE)
    if "event" not in entries:
        at.fail(f"missing `event` in conversion: e.g. {_CONVERSION_EXAMPLE}")
    within = default_within
    if "within" in entries:
        within = entries["within"].duration("within", positive=True)
    return Conversion(event=entries["event"].text("event"), within=within)


def _number(at: Located, what: str) -> float:
    value = at.plain()
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        at.fail(f"{what} must be a number, not {value!r}")
    return float(value)
