"""A real DNS server for tests: UDP on loopback, answering MX, A and AAAA from a dict.

`zone` maps a name to its records: `{"mx": [(10, "mx1.a.test")], "a": ["127.0.0.1"]}`; a null
MX is `[(0, ".")]`. A name not in the zone is NXDOMAIN; a name in `failing` gets SERVFAIL.
Every question asked is kept in `asked`, so tests can tell a cached answer from a new query.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest

_TYPES = {dns.rdatatype.MX: "mx", dns.rdatatype.A: "a", dns.rdatatype.AAAA: "aaaa"}


@dataclass
class DnsServer(asyncio.DatagramProtocol):
    zone: dict[str, dict[str, list[Any]]] = field(default_factory=dict)
    ttl: int = 300
    failing: set[str] = field(default_factory=set)
    asked: Counter[tuple[str, str]] = field(default_factory=Counter)
    port: int = 0
    _transport: asyncio.DatagramTransport | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: self, local_addr=("127.0.0.1", 0)
        )
        self._transport = transport
        self.port = transport.get_extra_info("sockname")[1]

    def stop(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        query = dns.message.from_wire(data)
        response = dns.message.make_response(query)
        question = query.question[0]
        name = question.name.to_text(omit_final_dot=True).lower()
        kind = _TYPES.get(question.rdtype, "")
        self.asked[(name, kind)] += 1
        if name in self.failing:
            response.set_rcode(dns.rcode.SERVFAIL)
        elif name not in self.zone:
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif records := self.zone[name].get(kind):
            texts = (
                [f"{p} {h if h == '.' else h + '.'}" for p, h in records]
                if kind == "mx"
                else records
            )
            response.answer.append(
                dns.rrset.from_text_list(
                    question.name, self.ttl, dns.rdataclass.IN, question.rdtype, texts
                )
            )
        assert self._transport is not None
        self._transport.sendto(response.to_wire(), addr)


@pytest.fixture
async def dns_server() -> AsyncIterator[DnsServer]:
    server = DnsServer()
    await server.start()
    yield server
    server.stop()
