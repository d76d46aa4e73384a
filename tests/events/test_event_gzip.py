"""Request bodies as sent: plain or gzip, never unpacked past the request limit."""

from __future__ import annotations

import gzip
import json
import zlib

import pytest

from mailpulse.events import MAX_REQUEST_BYTES, EventError, decode_body, parse_batch

JSON = b'{"batch": [{"type": "track", "userId": "u", "event": "Clicked"}]}'


@pytest.mark.parametrize("encoding", [None, "", "identity", " Identity "])
def test_plain_body_is_returned_as_is(encoding: str | None) -> None:
    assert decode_body(JSON, encoding) == JSON


@pytest.mark.parametrize("encoding", ["gzip", "GZIP", " gzip ", "x-gzip"])
def test_gzip_body_is_unpacked(encoding: str) -> None:
    assert decode_body(gzip.compress(JSON), encoding) == JSON


def test_gzip_batch_parses_end_to_end() -> None:
    events = parse_batch(decode_body(gzip.compress(JSON), "gzip"), received_at=0.0).events
    assert [e.event for e in events] == ["Clicked"]


def test_several_gzip_members_are_joined() -> None:
    assert decode_body(gzip.compress(JSON[:20]) + gzip.compress(JSON[20:]), "gzip") == JSON


def test_gzip_unpacking_to_exactly_the_limit_is_accepted() -> None:
    plain = b" " * (MAX_REQUEST_BYTES - len(JSON)) + JSON
    assert decode_body(gzip.compress(plain), "gzip") == plain


def test_gzip_unpacking_one_byte_past_the_limit_is_refused() -> None:
    plain = b" " * (MAX_REQUEST_BYTES + 1 - len(JSON)) + JSON
    with pytest.raises(EventError, match="unzips to more than 512000 bytes"):
        decode_body(gzip.compress(plain), "gzip")


def test_members_together_past_the_limit_are_refused() -> None:
    half = b" " * (MAX_REQUEST_BYTES // 2 + 1)
    with pytest.raises(EventError, match="unzips to more than"):
        decode_body(gzip.compress(half) + gzip.compress(half), "gzip")


def gzip_bomb(unpacked_size: int) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    chunk = b"\0" * 1_000_000
    parts = [compressor.compress(chunk) for _ in range(unpacked_size // len(chunk))]
    return b"".join(parts) + compressor.flush()


def test_gzip_bomb_is_refused() -> None:
    bomb = gzip_bomb(50_000_000)
    assert len(bomb) < 100_000
    with pytest.raises(EventError, match="unzips to more than"):
        decode_body(bomb, "gzip")


# mtime=0: the same bytes, so the same test ids, in every xdist worker's collection (a
# gzip header holds the time of compression, and workers collecting a second apart differ).
GZIPPED = gzip.compress(JSON, mtime=0)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (JSON, "not valid gzip"),
        (b"", "not valid gzip"),
        (GZIPPED[:-5], "truncated"),
        (GZIPPED + b"garbage", "not valid gzip"),
        (bytes(GZIPPED[:-8]) + b"\0" * 8, "not valid gzip"),  # bad CRC
    ],
)
def test_broken_gzip_is_refused(raw: bytes, reason: str) -> None:
    with pytest.raises(EventError, match=reason) as caught:
        decode_body(raw, "gzip")
    assert caught.value.where is None


@pytest.mark.parametrize("encoding", ["br", "deflate", "gzip, br", "compress"])
def test_other_encodings_are_refused(encoding: str) -> None:
    with pytest.raises(EventError, match="unsupported Content-Encoding"):
        decode_body(json.dumps({}).encode(), encoding)


@pytest.mark.parametrize("encoding", [None, "gzip"])
def test_sent_body_over_the_limit_is_refused(encoding: str | None) -> None:
    with pytest.raises(EventError, match="the request body is 512001 bytes"):
        decode_body(b" " * (MAX_REQUEST_BYTES + 1), encoding)
