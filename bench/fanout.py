"""Object notification fan-out: from a product coming back in stock to the last SMTP 250.

`--contacts` contacts (default 100,000) each view one product, outside the measured window
(then the bench waits until the fold has them all in its interest index). The clock starts
with the catalog update that takes the product's stock from 0 to 5 (`PUT
/admin/catalogs/products/items/{id}`): the catalog derives `Back In Stock`, the fold reads
its audience from the index and sends the event on to every viewer, and the back-in-stock
journey sends each a personalized, DKIM-signed message to the C sink (tsink), which
timestamps every 250. The window ends with the last of them.

The reference, measured in the same run: Postfix's smtp-source pushing as many messages of
the same size to smtp-sink (`../shared/bench/smtp_limit.sh`), the C wire limit of SMTP on
this machine. The ratio is window / wire time: how many times the wire limit the whole
fan-out takes, rendering, signing, storing and indexing included.

Prints one JSON line: medians over runs of the window, messages/s and the ratio, every run's
figures, and the reference.

usage: python -m bench.fanout [--runs 3] [--contacts 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import textwrap
import time
from pathlib import Path

import httpx
import orjson
import uvloop

from bench.common import (
    ADMIN_KEY,
    SHARED_BENCH,
    WRITE_KEY,
    TSink,
    build_tsink,
    mailpulse_server,
    median,
    wait_identified,
    workdir,
    write_bench_project,
)

PRODUCT = "sku-tent-2"
MESSAGE_BYTES = 2000  # about what the template renders to, signed: the reference's size

BACK_IN_STOCK_JOURNEY = """\
    trigger:
      event: Back In Stock
      fan_out:
        catalog: products
        performed: [Product Viewed]
        key: product_id
        within: 30d
    entry: always
    steps:
      - send: back_in_stock
    """
BACK_IN_STOCK_TEMPLATE = """\
---
subject: "{{ contact.first_name }}, the {{ event.properties.name | default('tent') }} is back"
---
<html><head><style>p { color: #1f2933; } .cta { font-weight: bold; }</style></head><body>
<p>Good news, {{ contact.first_name }}: the product you looked at is back in stock,
{{ event.properties.new_stock }} of them. Things like this go quickly.</p>
<p class="cta"><a href="https://shop.example.org/p/{{ event.properties.id }}">Get it now</a></p>
<p>You are receiving this because you looked at it at our shop.
<a href="https://shop.example.org/u">Unsubscribe</a></p>
<p>Example Shop, 1 Bench Street, Testville</p>
</body></html>
"""


def write_project(root: Path, smtp_port: int) -> Path:
    project = write_bench_project(root, smtp_port, journeys=False)
    (project / "templates" / "back_in_stock.html").write_text(BACK_IN_STOCK_TEMPLATE)
    journey = project / "journeys" / "back_in_stock.yaml"
    journey.write_text(textwrap.dedent(BACK_IN_STOCK_JOURNEY))
    return project


async def viewers(hostport: str, emails: list[str]) -> None:
    """Each contact identified and viewing the product, through /v1/batch."""
    async with httpx.AsyncClient(base_url=f"http://{hostport}", auth=(WRITE_KEY, "")) as c:
        for start in range(0, len(emails), 500):
            batch = []
            for email in emails[start : start + 500]:
                traits = {"email": email, "first_name": "Pat"}
                batch.append({"type": "identify", "userId": email, "traits": traits})
                batch.append(
                    {
                        "type": "track",
                        "userId": email,
                        "event": "Product Viewed",
                        "properties": {"product_id": PRODUCT, "name": "Ridge tent"},
                    }
                )
            r = await c.post("/v1/batch", content=orjson.dumps({"batch": batch}))
            r.raise_for_status()


async def stock(hostport: str, amount: int) -> None:
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    async with httpx.AsyncClient(base_url=f"http://{hostport}", headers=headers) as c:
        r = await c.put(
            f"/admin/catalogs/products/items/{PRODUCT}",
            json={"name": "Ridge tent", "price": 249.0, "stock": amount},
        )
        r.raise_for_status()


async def one_run(contacts: int) -> dict[str, float]:
    emails = [f"viewer-{i}@bench.example.org" for i in range(contacts)]
    with workdir() as tmp:
        sink = TSink(build_tsink(tmp), tmp)
        project = write_project(tmp / "project", sink.port)
        try:
            with mailpulse_server(project, tmp / "data") as hostport:
                await stock(hostport, 0)
                await viewers(hostport, emails)
                # Folded in log order: the last viewer in means every view is indexed.
                await wait_identified(hostport, emails[-1:], within=600)
                await asyncio.sleep(1.0)
                started = time.time()
                await stock(hostport, 5)
                deadline = started + 600
                while sink.count() < contacts and time.time() < deadline:  # noqa: ASYNC110
                    await asyncio.sleep(0.1)
        finally:
            stamps = sink.stop()
    delivered = [stamps[e] for e in emails if e in stamps]
    window = max(delivered) - started if delivered else float("nan")
    return {"delivered": len(delivered), "window_s": window, "per_s": len(delivered) / window}


def wire_limit(messages: int) -> dict[str, float]:
    script = SHARED_BENCH / "smtp_limit.sh"
    out = subprocess.run(
        ["bash", str(script), str(messages), str(MESSAGE_BYTES), "20"],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--contacts", type=int, default=100_000)
    args = parser.parse_args()
    runs, references = [], []
    for _ in range(args.runs):
        runs.append(uvloop.run(one_run(args.contacts)))
        references.append(wire_limit(args.contacts))
    window = median([r["window_s"] for r in runs])
    wire = median([r["seconds"] for r in references])
    report = {
        "bench": "fanout",
        "runs": args.runs,
        "contacts": args.contacts,
        "delivered": int(median([r["delivered"] for r in runs])),
        "window_s": round(window, 2),
        "messages_per_s": round(median([r["per_s"] for r in runs]), 1),
        "every_run": [[round(r["window_s"], 2), round(r["per_s"], 1)] for r in runs],
        "reference": {
            "what": "smtp-source to smtp-sink, same count and size (C wire limit)",
            "seconds": round(wire, 2),
            "per_s": round(median([r["per_s"] for r in references]), 1),
        },
        "window_vs_wire": round(window / wire, 1),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
