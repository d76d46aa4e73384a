"""Broadcast: one campaign to N recipients, personalized ~20 KB MJML, DKIM RSA-2048, to
Postfix's smtp-sink on loopback.

The contacts are created first, outside the measured window (identify calls through
/v1/batch, then a wait until the fold has them all). The window runs from the POST that
creates the campaign to the moment the admin API counts every message sent (250 from the
sink). Peak memory is that of the server's whole process tree (server and couriers), sampled
every 0.2 s during the window, as the sum of RSS (which counts a shared library's pages once
per process) and of PSS (which shares them out: what the tree takes from the machine).

In the same run, two references:
- the wire: `../shared/bench/smtp_limit.sh`, Postfix's C smtp-source to smtp-sink with the
  same number of messages of the same size: the limit of SMTP on this machine;
- plain Python: what one would write by hand, a loop of Jinja2 (the same compiled HTML),
  `email.message`, dkimpy and smtplib over one connection, on `--baseline` recipients.

Prints one JSON line: medians over runs of messages/s, peak RSS and PSS, CPU milliseconds per
message (server, couriers), every run's figures, the message size, the ratio to the wire
and to plain Python.

usage: python -m bench.broadcast [--runs 3] [--recipients 1000000] [--baseline 1000]
                                 [--untracked]   (no open pixel or tracked links: their cost)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import smtplib
import subprocess
import sys
import time
from email.message import EmailMessage
from pathlib import Path

import httpx
import orjson

from bench.common import (
    ADMIN_KEY,
    SHARED_BENCH,
    WRITE_KEY,
    free_port,
    median,
    wait_identified,
    wait_port,
    workdir,
    write_bench_project,
)

NEWSLETTER = Path(__file__).with_name("newsletter.mjml")


def write_project(root: Path, smtp_port: int, couriers: int = 1, tracked: bool = True) -> Path:
    project = write_bench_project(root, smtp_port, journeys=False)
    shutil.copy(NEWSLETTER, project / "templates" / "newsletter.mjml")
    toml = project / "mailpulse.toml"
    text = toml.read_text()
    setting = f"couriers = {couriers}\n"
    if "[delivery]\n" in text:
        text = text.replace("[delivery]\n", f"[delivery]\n{setting}")
    else:
        text += f"\n[delivery]\n{setting}"
    if not tracked:
        text += "\n[tracking]\nopens = false\nclicks = false\n"
    toml.write_text(text)
    return project


def contact_traits(n: int, email: str) -> dict:
    return {"email": email, "first_name": f"Pat{n}", "city": "Portland", "points": n % 5000}


async def create_contacts(hostport: str, emails: list[str]) -> None:
    async with httpx.AsyncClient(base_url=f"http://{hostport}", auth=(WRITE_KEY, "")) as c:
        for start in range(0, len(emails), 2000):
            batch = [
                {"type": "identify", "userId": e, "traits": contact_traits(start + i, e)}
                for i, e in enumerate(emails[start : start + 2000])
            ]
            (await c.post("/v1/batch", content=orjson.dumps({"batch": batch}))).raise_for_status()


def process_tree(root: int) -> list[int]:
    """`root` and every process below it."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo += children.get(pid, [])
    return tree


def tree_memory(root: int) -> tuple[int, int]:
    """Bytes of memory of `root` and every process below it: resident (RSS, which counts the
    pages of a shared library once in every process that maps it) and proportional (PSS,
    which shares them out: what the processes take from the machine together)."""
    rss = pss = 0
    for pid in process_tree(root):
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Rss:"):
                    rss += int(line.split()[1]) * 1024
                elif line.startswith("Pss:"):
                    pss += int(line.split()[1]) * 1024
        except OSError:
            pass
    return rss, pss


def tree_cpu(root: int) -> tuple[float, float]:
    """CPU seconds (user and system) so far of `root` itself and of the processes below it:
    what a message costs, which a shared machine's noise does not change as it does time."""
    own = below = 0.0
    for pid in process_tree(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        seconds = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        if pid == root:
            own += seconds
        else:
            below += seconds
    return own, below


def one_run(recipients: int, sink_port: int, couriers: int, tracked: bool) -> dict[str, float]:
    emails = [f"r{i}@bench.example.org" for i in range(recipients)]
    with workdir() as tmp:
        project = write_project(tmp / "project", sink_port, couriers, tracked)
        port = free_port()
        command = ["serve", "--project", str(project), "--data", str(tmp / "data")]
        server = subprocess.Popen(
            [sys.executable, "-m", "mailpulse.cli", *command, "--port", str(port)],
            stdout=subprocess.DEVNULL,
        )
        try:
            wait_port(port)
            return asyncio.run(measure(f"127.0.0.1:{port}", server.pid, emails))
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(60)


async def measure(hostport: str, server_pid: int, emails: list[str]) -> dict[str, float]:
    await create_contacts(hostport, emails)
    await wait_identified(hostport, emails[-1:], within=3600)
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    async with httpx.AsyncClient(base_url=f"http://{hostport}", headers=headers) as c:
        peak = before = tree_memory(server_pid)
        cpu_before = tree_cpu(server_pid)
        started = time.time()
        body = {"id": "winter", "template": "newsletter", "audience": "all"}
        (await c.post("/admin/campaigns", json=body)).raise_for_status()
        sent = 0
        while sent < len(emails) and time.time() < started + 7200:
            await asyncio.sleep(0.2)
            now = tree_memory(server_pid)
            peak = (max(peak[0], now[0]), max(peak[1], now[1]))
            state = (await c.get("/admin/campaigns/winter")).json()
            sent = state["messages"].get("sent", 0)
        window = time.time() - started
        server_cpu, courier_cpu = (
            after - first for after, first in zip(tree_cpu(server_pid), cpu_before, strict=True)
        )
    return {
        "server_cpu_ms": server_cpu * 1000 / max(sent, 1),
        "courier_cpu_ms": courier_cpu * 1000 / max(sent, 1),
        "sent": sent,
        "window_s": window,
        "per_s": sent / window,
        "peak_rss_mb": peak[0] / 2**20,
        "rss_before_mb": before[0] / 2**20,
        "peak_pss_mb": peak[1] / 2**20,
        "pss_before_mb": before[1] / 2**20,
    }


def rendered_size(project_root: Path) -> int:
    """Bytes of one signed message as mailpulse builds it."""
    from mailpulse.project import load_project
    from mailpulse.runtime.courier_parts import message_factory
    from mailpulse.tokens import TokenSigner
    from mailpulse.types import SendIntent

    # With tokens, as the couriers make it: its links, List-Unsubscribe and return path signed.
    factory = message_factory(load_project(project_root), tokens=TokenSigner("b" * 64))
    intent = SendIntent(
        key="campaign:winter:r0",
        contact_id="r0",
        email="r0@bench.example.org",
        template="newsletter",
        context={"contact": {"id": "r0", **contact_traits(0, "r0@bench.example.org")}},
    )
    message, _, _ = factory.make(intent)
    return len(message.data)


def plain_python(project_root: Path, count: int, sink_port: int) -> float:
    """Messages/s of the hand-written loop: the same Jinja2 template (MJML compiled once),
    email.message, dkimpy, smtplib over one connection."""
    import dkim

    from mailpulse.project import load_project

    template = load_project(project_root).templates.get("newsletter")
    key = (project_root / "dkim.pem").read_bytes()
    project = {"name": "Bench", "url": "https://b.example", "postal_address": "1 Bench Road"}
    started = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", sink_port) as smtp:
        for n in range(count):
            email = f"plain{n}@bench.example.org"
            contact = {"id": f"p{n}", **contact_traits(n, email)}
            content = template.render(
                {"contact": contact, "project": project, "unsubscribe_url": "https://b.example/u"}
            )
            msg = EmailMessage()
            msg["From"], msg["To"] = "shop@bench.example.com", email
            msg["Subject"] = content.subject
            msg.set_content(content.text)
            msg.add_alternative(content.html, subtype="html")
            raw = msg.as_bytes()
            signature = dkim.sign(
                raw, b"b", b"bench.example.com", key, include_headers=[b"from", b"to", b"subject"]
            )
            smtp.sendmail("shop@bench.example.com", [email], signature + raw)
    return count / (time.perf_counter() - started)


def wire_limit(messages: int, size: int) -> dict[str, float]:
    out = subprocess.run(
        ["bash", str(SHARED_BENCH / "smtp_limit.sh"), str(messages), str(size), "20"],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


class SmtpSink:
    """Postfix's smtp-sink on a free loopback port."""

    def __init__(self) -> None:
        self.port = free_port()
        binary = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
        self.proc = subprocess.Popen(
            [binary, "-u", "nobody", f"127.0.0.1:{self.port}", "1000"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_port(self.port)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--recipients", type=int, default=1_000_000)
    parser.add_argument("--baseline", type=int, default=1000)
    parser.add_argument("--couriers", type=int, default=2, help="courier processes")
    parser.add_argument(
        "--untracked", action="store_true", help="no open pixel or tracked links (their cost)"
    )
    args = parser.parse_args()
    tracked = not args.untracked
    sink = SmtpSink()
    try:
        with workdir() as tmp:
            project = write_project(tmp / "project", sink.port, tracked=tracked)
            size = rendered_size(project)
            runs, wires, plains = [], [], []
            for _ in range(args.runs):
                runs.append(one_run(args.recipients, sink.port, args.couriers, tracked))
                wires.append(wire_limit(args.recipients, size))
                plains.append(plain_python(project, args.baseline, sink.port))
    finally:
        sink.stop()
    per_s = median([r["per_s"] for r in runs])
    wire = median([w["per_s"] for w in wires])
    plain = median(plains)
    print(
        json.dumps(
            {
                "bench": "broadcast",
                "runs": args.runs,
                "recipients": args.recipients,
                "couriers": args.couriers,
                "tracked": tracked,
                "message_bytes": size,
                "messages_per_s": round(per_s, 1),
                "peak_rss_mb": round(median([r["peak_rss_mb"] for r in runs]), 1),
                "rss_before_mb": round(median([r["rss_before_mb"] for r in runs]), 1),
                "peak_pss_mb": round(median([r["peak_pss_mb"] for r in runs]), 1),
                "pss_before_mb": round(median([r["pss_before_mb"] for r in runs]), 1),
                "cpu_ms_per_message": {
                    "server": round(median([r["server_cpu_ms"] for r in runs]), 3),
                    "couriers": round(median([r["courier_cpu_ms"] for r in runs]), 3),
                },
                "every_run": [
                    [round(r["per_s"], 1), round(r["peak_rss_mb"], 1), round(r["peak_pss_mb"], 1)]
                    for r in runs
                ],
                "wire": {
                    "what": "smtp-source to smtp-sink, same count and size",
                    "per_s": round(wire, 1),
                },
                "plain_python": {
                    "what": "Jinja2 + email.message + dkimpy + smtplib loop",
                    "per_s": round(plain, 1),
                    "messages": args.baseline,
                },
                "vs_wire": round(per_s / wire, 3),
                "vs_plain_python": round(per_s / plain, 1),
                "target_per_s": 1500,
                "target_rss_mb": 300,
            }
        )
    )


if __name__ == "__main__":
    main()
