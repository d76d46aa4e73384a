"""Subscription topics: the kinds of marketing a contact can have or decline one by one.

A project declares them in `mailpulse.toml`:

```toml
[topics.promotions]
name = "Promotions"
description = "Sales and offers, about once a week"

[topics.newsletter]
name = "Newsletter"
opt_in = true           # only to contacts who said yes
double_opt_in = true    # ... and confirmed it from a link mailed to them
```

An opt-out topic (the default) reaches every contact until they unsubscribe from it; an opt-in
one only contacts whose consent is on record (see mailpulse.policy.consent); a double opt-in
one only once the contact confirmed from the link a confirmation email carries.
"""

from __future__ import annotations

import re
from collections.abc import Collection

import msgspec

from mailpulse.yamlnodes import suggest

TOPIC_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")


class Topic(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    description: str = ""
    opt_in: bool = False
    double_opt_in: bool = False

    @property
    def needs_consent(self) -> bool:
        return self.opt_in or self.double_opt_in


def unknown_topic(topic: str, known: Collection[str]) -> str:
    """What an error naming a topic the project does not declare says."""
    hint = suggest(topic, known)
    return f"no topic {topic!r}: {hint}; declare it as [topics.{topic}] in mailpulse.toml"
