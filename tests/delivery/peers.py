"""Real SMTP peers for the client tests: aiosmtpd in a thread, and a scripted asyncio server."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import socket
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Recorder:
    """aiosmtpd handler that keeps every message and can refuse chosen recipients."""

    def __init__(self, replies: dict[str, tuple[str, str]] | None = None) -> None:
        # recipient -> (stage "RCPT" or "DATA", reply line)
        self.replies = replies or {}
        self.messages: list[tuple[str, list[str], bytes]] = []
        self.peers: set[tuple[str, int]] = set()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        stage, reply = self.replies.get(address, ("", ""))
        if stage == "RCPT":
            return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        self.peers.add(session.peer)
        for address in envelope.rcpt_tos:
            stage, reply = self.replies.get(address, ("", ""))
            if stage == "DATA":
                return reply
        self.messages.append((envelope.mail_from, envelope.rcpt_tos, envelope.original_content))
        return "250 2.0.0 queued"


@pytest.fixture
def smtp_server() -> Iterator[Callable[..., tuple[Recorder, int]]]:
    """Starts aiosmtpd on a free port: `smtp_server(handler, **SMTP_parameters)`."""
    controllers: list[Controller] = []

    def start(handler: Recorder | None = None, **parameters) -> tuple[Recorder, int]:
        handler = handler or Recorder()
        port = free_port()
        controller = Controller(
            handler, hostname="127.0.0.1", port=port, ready_timeout=5, **parameters
        )
        controller.start()
        controllers.append(controller)
        return handler, port

    yield start
    for controller in controllers:
        controller.stop()


class Certificate:
    def __init__(self, directory: Path) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )
        self.cert_pem = cert.public_bytes(serialization.Encoding.PEM)
        self.cert_file = directory / "cert.pem"
        self.key_file = directory / "key.pem"
        self.cert_file.write_bytes(self.cert_pem)
        self.key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cadata=self.cert_pem.decode("ascii"))


@pytest.fixture
def certificate(tmp_path: Path) -> Certificate:
    return Certificate(tmp_path)


def accept_user(user: bytes, password: bytes):
    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = auth_data.login == user and auth_data.password == password
        return AuthResult(success=ok, handled=False)

    return authenticator


class ScriptedServer:
    """A tiny SMTP server speaking raw bytes, recording every read it makes.

    `messages` holds each content as it was on the wire, still dot-stuffed.
    `replies` overrides the reply to a verb ("MAIL", "RCPT", "DATA", "END" for the end of the
    content); a reply of None closes the connection instead of answering.
    """

    def __init__(self, *, pipelining: bool = True, replies: dict[str, bytes | None] | None = None):
        self.extensions = b"250-scripted\r\n" + (b"250-PIPELINING\r\n" if pipelining else b"")
        self.extensions += b"250 8BITMIME\r\n"
        self.replies = replies or {}
        self.reads: list[bytes] = []
        self.messages: list[bytes] = []
        self.connections = 0
        self.after_message: bytes | None = None  # sent unasked after each message, then close
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    def _reply(self, verb: str, default: bytes) -> bytes | None:
        return self.replies.get(verb, default)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.write(b"220 scripted ESMTP\r\n")
        buffer = b""
        in_data = False
        try:
            while chunk := await reader.read(65536):
                self.reads.append(chunk)
                buffer += chunk
                while True:
                    if in_data:
                        if buffer.startswith(b".\r\n"):
                            content, buffer = b"", buffer[3:]
                        else:
                            end = buffer.find(b"\r\n.\r\n")
                            if end < 0:
                                break
                            content, buffer = buffer[: end + 2], buffer[end + 5 :]
                        self.messages.append(content)
                        in_data = False
                        reply = self._reply("END", b"250 2.0.0 queued\r\n")
                        if reply is None:
                            return
                        writer.write(reply)
                        if self.after_message is not None:
                            writer.write(self.after_message)
                            return
                        continue
                    line, found, rest = buffer.partition(b"\r\n")
                    if not found:
                        break
                    buffer = rest
                    verb = line[:4].decode().upper()
                    default = {
                        "EHLO": self.extensions,
                        "DATA": b"354 go ahead\r\n",
                        "QUIT": b"221 bye\r\n",
                    }.get(verb, b"250 2.0.0 OK\r\n")
                    reply = self._reply(verb, default)
                    if reply is None:
                        return
                    writer.write(reply)
                    if verb == "QUIT":
                        return
                    if verb == "DATA" and reply.startswith(b"354"):
                        in_data = True
                await writer.drain()
        finally:
            writer.close()


@pytest.fixture
async def scripted():
    servers: list[ScriptedServer] = []

    async def start(**kwargs) -> ScriptedServer:
        server = ScriptedServer(**kwargs)
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.stop()
