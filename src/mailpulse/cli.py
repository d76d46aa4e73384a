"""The `mailpulse` command."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import signal
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
import uvicorn
from rich.console import Console
from rich.markup import escape

from mailpulse.access.command import audit, keys_app
from mailpulse.audience.import_command import import_contacts
from mailpulse.campaigns.command import campaign_app
from mailpulse.errors import ProjectError
from mailpulse.feedback.command import bounce_app
from mailpulse.policy.breaker_command import breaker_app
from mailpulse.policy.suppression_command import suppression_app
from mailpulse.privacy.command import contact_app

if TYPE_CHECKING:
    from mailpulse.project import Project

app = typer.Typer(
    help="mailpulse: Segment events in, personalized DKIM-signed email out in milliseconds.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
dkim_app = typer.Typer(help="DKIM keys.", no_args_is_help=True)
app.add_typer(dkim_app, name="dkim")
app.add_typer(campaign_app, name="campaign")
app.add_typer(suppression_app, name="suppression")
app.add_typer(breaker_app, name="breaker")
app.add_typer(bounce_app, name="bounce")
app.add_typer(keys_app, name="keys")
app.add_typer(contact_app, name="contact")
app.command("audit")(audit)
app.command("import")(import_contacts)
console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

ProjectDir = Annotated[
    Path, typer.Option("--project", "-p", help="The project folder (holds mailpulse.toml).")
]


def _load(project_dir: Path) -> Project:
    from mailpulse.project import load_project

    try:
        return load_project(project_dir)
    except ProjectError as exc:
        err.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(2) from exc


def _require_shared_secret(project: Project) -> None:
    """Scale-out nodes sign and check tokens with one secret that none may invent: refused
    here with the fix, not as a traceback from deep in the pipeline."""
    from mailpulse.tokens import project_secret

    try:
        project_secret(project.config.project.secret, None)
    except ValueError as exc:
        where = project.root / "mailpulse.toml"
        err.print(f"[bold red]error:[/] {escape(f'{where}: {exc}')}")
        raise typer.Exit(2) from exc


def _run(coro: Coroutine[Any, Any, None]) -> None:
    from mailpulse.runtime.heap import settle_heap

    settle_heap()
    try:
        import uvloop

        uvloop.run(coro)
    except ImportError:
        asyncio.run(coro)


async def _serve(app_: Any, host: str, port: int, stop: asyncio.Event | None = None) -> None:
    config = uvicorn.Config(
        app_, host=host, port=port, log_level="warning", access_log=False, lifespan="on"
    )
    server = uvicorn.Server(config)
    if stop is not None:

        async def watch() -> None:
            await stop.wait()
            server.should_exit = True

        watcher = asyncio.create_task(watch())
    await server.serve()
    if stop is not None:
        watcher.cancel()


@app.command()
def validate(project: Annotated[Path, typer.Argument(help="The project folder.")] = Path(".")):
    """Check a project: mailpulse.toml, templates (mailpulse's built-in ones counted), journeys,
    segments, topics and alert rules (alerts.yaml). Errors name file and line."""
    loaded = _load(project)
    console.print(
        f"[green]ok[/] {loaded.root}: {len(loaded.templates.names())} templates, "
        f"{len(loaded.journeys)} journeys, {len(loaded.segments)} segments, "
        f"{len(loaded.topics)} topics, {len(loaded.alerts.rules)} alert rules"
    )


StoreUrl = Annotated[
    str | None,
    typer.Option(
        "--store",
        help="Scale-out: the PostgreSQL URL (postgresql://...) holding log and state.",
    ),
]
BusUrl = Annotated[
    str | None,
    typer.Option("--bus", help="Scale-out: NATS JetStream server URL(s), comma-separated."),
]
BusPrefix = Annotated[
    str,
    typer.Option(help="Scale-out: name of the JetStream stream, for deployments sharing NATS."),
]
BusReplicas = Annotated[
    int,
    typer.Option(help="Scale-out: copies JetStream keeps of every item (3 on a 3-node cluster)."),
]
Partitions = Annotated[
    int,
    typer.Option(help="Scale-out: partitions of the log; every node must be given the same."),
]


def _scale_out(
    store: str | None, bus: str | None, partitions: int, bus_prefix: str, bus_replicas: int
) -> tuple[Any, Any, Any]:
    """The PostgreSQL log and state and the JetStream bus, or a clear refusal."""
    if store is None or bus is None:
        err.print(
            "[bold red]error:[/] scale-out needs both --store postgresql://... and --bus nats://..."
        )
        raise typer.Exit(2)
    from mailpulse.runtime.scale_out import scale_out_parts

    try:
        return scale_out_parts(
            store, bus, partitions, bus_prefix=bus_prefix, bus_replicas=bus_replicas
        )
    except ValueError as exc:
        err.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(2) from exc


@app.command()
def serve(
    project: ProjectDir = Path("."),
    data: Annotated[
        Path, typer.Option(help="Embedded mode: where the SQLite log and state live.")
    ] = Path(".mailpulse"),
    host: str = "127.0.0.1",
    port: int = 8000,
    store: StoreUrl = None,
    bus: BusUrl = None,
    partitions: Partitions = 16,
    bus_prefix: BusPrefix = "mailpulse",
    bus_replicas: BusReplicas = 1,
) -> None:
    """Run the HTTP API on a project: with the whole pipeline (embedded), or, given --store and
    --bus, as a scale-out API node whose events `mailpulse worker` processes."""
    from mailpulse.api import create_app
    from mailpulse.runtime.pipeline import Pipeline

    loaded = _load(project)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if store is None and bus is None:
        pipeline = Pipeline.embedded(loaded, data)
        where = f"data in {data}"
    else:
        log_, state, bus_ = _scale_out(store, bus, partitions, bus_prefix, bus_replicas)
        _require_shared_secret(loaded)
        pipeline = Pipeline(loaded, log=log_, state=state, bus=bus_, run_partitions=False)
        where = f"API node, {partitions} partitions"
    console.print(f"mailpulse serving {loaded.root} on http://{host}:{port} ({where})")
    _run(_serve(create_app(pipeline), host, port))


@app.command()
def worker(
    project: ProjectDir = Path("."),
    store: StoreUrl = None,
    bus: BusUrl = None,
    partitions: Partitions = 16,
    bus_prefix: BusPrefix = "mailpulse",
    bus_replicas: BusReplicas = 1,
    metrics_port: Annotated[
        int,
        typer.Option(min=0, max=65535, help="Serve Prometheus /metrics on this port (0: none)."),
    ] = 0,
) -> None:
    """Scale-out: fold events, run journeys and send, for the partitions this worker owns.
    Start as many as you like; a worker that dies has its partitions taken over."""
    from mailpulse.runtime.leases import PartitionLeases
    from mailpulse.runtime.worker import Worker

    loaded = _load(project)
    _require_shared_secret(loaded)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    log_, state, bus_ = _scale_out(store, bus, partitions, bus_prefix, bus_replicas)
    assert store is not None
    node = Worker(
        loaded,
        log=log_,
        state=state,
        bus=bus_,
        leases=PartitionLeases(store, partitions),
    )
    if metrics_port:
        from prometheus_client import start_http_server

        try:
            start_http_server(metrics_port, addr="127.0.0.1", registry=node.metrics.registry)
        except OSError as exc:
            err.print(f"[bold red]error:[/] --metrics-port {metrics_port}: {exc.strerror}")
            raise typer.Exit(2) from exc

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await node.start()
        running = asyncio.create_task(node.run())
        console.print(f"mailpulse worker on {loaded.root} ({partitions} partitions)")
        await stop.wait()
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
        await node.stop()

    _run(main())


@app.command()
def migrate(
    store: Annotated[str, typer.Option("--store", help="The PostgreSQL URL (postgresql://...).")],
) -> None:
    """Scale-out: bring the PostgreSQL schema up to date (servers and workers also do it at
    start)."""
    from mailpulse.runtime.scale_out import is_store_url
    from mailpulse.store.postgres import migrate as run_migrations

    if not is_store_url(store):
        err.print(f"[bold red]error:[/] --store {store!r}: a postgresql:// URL is needed")
        raise typer.Exit(2)

    async def main() -> None:
        applied = await run_migrations(store)
        console.print(f"applied {', '.join(applied)}" if applied else "the schema is up to date")

    try:
        asyncio.run(main())
    except OSError as exc:
        err.print(f"[bold red]error:[/] cannot reach PostgreSQL: {exc}")
        raise typer.Exit(1) from exc


def _find_demo_project() -> Path:
    candidates = [
        Path.cwd() / "examples" / "shop",
        Path(__file__).resolve().parents[2] / "examples" / "shop",
    ]
    for path in candidates:
        if (path / "mailpulse.toml").is_file():
            return path
    err.print("[bold red]error:[/] cannot find examples/shop; run from the mailpulse checkout")
    raise typer.Exit(2)


@app.command()
def demo(
    port: Annotated[int, typer.Option(help="HTTP port of the demo server.")] = 8000,
    host: str = "127.0.0.1",
    rate: Annotated[float, typer.Option(help="Simulated shop actions per second.")] = 2.0,
    duration: Annotated[
        float, typer.Option(help="Stop after this many seconds (0: run until Ctrl-C).")
    ] = 0,
    data: Annotated[Path, typer.Option(help="Demo data folder (reset at start).")] = Path(
        ".mailpulse-demo"
    ),
    project: Annotated[Path | None, typer.Option(help="Another project to demo.")] = None,
) -> None:
    """Server + example shop project + capture inbox + traffic, all on this machine."""
    from mailpulse.api import create_app
    from mailpulse.demo import CaptureInbox, TrafficGenerator, inbox_router
    from mailpulse.runtime.pipeline import Pipeline

    loaded = _load(project or _find_demo_project())
    shutil.rmtree(data, ignore_errors=True)

    async def main() -> None:
        inbox = CaptureInbox(host="127.0.0.1", port=0)
        await inbox.start()
        pipeline = Pipeline.embedded(loaded, data, smtp=("127.0.0.1", inbox.port))
        web = create_app(pipeline, extra_routers=[inbox_router(inbox)])
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        base = f"http://{host}:{port}"
        server = asyncio.create_task(_serve(web, host, port, stop))
        # uvicorn offers no "started" event to wait on; poll the port.
        while not server.done() and not await _listening(host, port):  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        if server.done():
            await server  # raises: the port is taken or the app did not start
        cfg = loaded.config.project
        console.print(f"[bold green]mailpulse demo[/] on the {cfg.name!r} project ({loaded.root})")
        console.print(f"  inbox (what was sent)   {base}/inbox")
        console.print(f"  live dashboard          {base}/dashboard (key: {cfg.admin_key})")
        console.print(f"  API docs                {base}/docs")
        console.print(f"  metrics                 {base}/metrics")
        console.print(
            f"  a contact's timeline    curl -H 'Authorization: Bearer {cfg.admin_key}' "
            f"{base}/admin/contacts/<userId>/events"
        )
        console.print(
            f"  send your own event     curl -u {cfg.write_keys[0]}: {base}/v1/track "
            "-H 'content-type: application/json' "
            '-d \'{"userId":"u1","event":"Signed Up"}\''
        )
        console.print(f"  SMTP capture inbox      127.0.0.1:{inbox.port}")
        console.print("Traffic is flowing; press Ctrl-C to stop.")
        traffic = TrafficGenerator(base, cfg.write_keys[0], rate=rate, admin_key=cfg.admin_key)
        traffic_task = asyncio.create_task(traffic.run(stop))
        if duration:
            loop.call_later(duration, stop.set)
        await stop.wait()
        await traffic_task
        await server
        await inbox.stop()
        console.print(
            f"stopped: {traffic.actions_sent} shop actions sent, "
            f"{inbox.received_count} emails captured"
        )

    _run(main())


async def _listening(host: str, port: int) -> bool:
    with contextlib.suppress(OSError):
        _, writer = await asyncio.open_connection(host, port)
        writer.close()
        return True
    return False


@dkim_app.command("keygen")
def dkim_keygen(
    out: Annotated[Path, typer.Option(help="Where to write the private key (PEM).")],
    selector: str = "mp1",
    domain: str = "example.com",
    bits: int = 2048,
) -> None:
    """Make an RSA key for DKIM and print the DNS TXT record to publish."""
    from mailpulse.delivery import dns_txt_record, generate_rsa_key

    if out.exists():
        err.print(f"[bold red]error:[/] {out} exists; not overwriting a key")
        raise typer.Exit(2)
    pem = generate_rsa_key(bits)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(pem)
    out.chmod(0o600)
    console.print(f"wrote {out}; publish this TXT record:")
    console.print(f'{selector}._domainkey.{domain}. IN TXT "{dns_txt_record(pem)}"')


if __name__ == "__main__":
    app()
