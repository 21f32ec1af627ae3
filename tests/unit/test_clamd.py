"""relay.clamd: every failure is ScannerUnavailable, never "clean"; failover; bounds.

The faults are real sockets (tests/fixtures/clamd.py); the happy path runs
against the real clamd (marked ``clamd``).
"""

from __future__ import annotations

import asyncio

import pytest

from relay import clamd as cl
from relay.errors import ScannerUnavailable
from tests.data.attachments import samples


def run(coro):
    return asyncio.run(coro)


def test_down_clamd_is_unavailable(clamd_down):
    with pytest.raises(ScannerUnavailable, match="cannot connect"):
        run(cl.scan_bytes(b"hello", clamd_down, timeout=5))
    with pytest.raises(ScannerUnavailable):
        run(cl.ping(clamd_down, timeout=5))


def test_hung_clamd_times_out(clamd_hung):
    with pytest.raises(ScannerUnavailable, match="within"):
        run(cl.scan_bytes(b"hello", clamd_hung, timeout=0.5))
    with pytest.raises(ScannerUnavailable, match="within"):
        run(cl.ping(clamd_hung, timeout=0.5))


def test_wrong_protocol_is_unavailable(clamd_garbage):
    with pytest.raises(ScannerUnavailable, match="not clamd"):
        run(cl.scan_bytes(b"hello", clamd_garbage, timeout=5))
    with pytest.raises(ScannerUnavailable, match="not clamd"):
        run(cl.ping(clamd_garbage, timeout=5))
    with pytest.raises(ScannerUnavailable, match="not clamd"):
        run(cl.version(clamd_garbage, timeout=5))


def test_every_address_failing_names_each(clamd_down, clamd_garbage):
    with pytest.raises(ScannerUnavailable) as info:
        run(cl.scan_bytes(b"hello", (clamd_down, clamd_garbage), timeout=5))
    assert clamd_down in str(info.value) and clamd_garbage in str(info.value)


def test_over_stream_max_is_refused_before_sending(clamd_down):
    with pytest.raises(ScannerUnavailable, match="clamd_stream_max"):
        run(cl.scan_bytes(b"x" * 101, clamd_down, timeout=5, stream_max=100))


def test_bad_addresses_are_unavailable():
    with pytest.raises(ScannerUnavailable):
        run(cl.scan_bytes(b"x", "http://127.0.0.1:1", timeout=2))
    with pytest.raises(ScannerUnavailable):
        run(cl.scan_bytes(b"x", "unix:///nonexistent/clamd.sock", timeout=2))


def test_client_from_settings(make_settings):
    settings = make_settings(clamd="tcp://127.0.0.1:9,unix:///run/c.sock", clamd_timeout="3s",
                             clamd_concurrency=2, clamd_stream_max="1MiB")
    client = cl.Clamd.from_settings(settings)
    assert client.urls == ("tcp://127.0.0.1:9", "unix:///run/c.sock")
    assert (client.timeout, client.stream_max) == (3.0, 1024 * 1024)


@pytest.mark.clamd
def test_real_clamd_ping_version_scan_and_failover(clamd, clamd_down, clamd_garbage):
    assert run(cl.ping(clamd)) is True
    assert run(cl.version(clamd)).startswith("ClamAV ")
    clean = run(cl.scan_bytes(b"just text", clamd))
    assert clean.clean and clean.url == clamd
    hit = run(cl.scan_bytes(samples.EICAR, (clamd_down, clamd_garbage, clamd), timeout=10))
    assert hit.signature and hit.signature.startswith("Eicar-Test-Signature") and hit.url == clamd


@pytest.mark.clamd
def test_real_clamd_multi_chunk_stream(clamd):
    data = b"\0" * (3 * cl.CHUNK + 17) + samples.EICAR
    assert run(cl.scan_bytes(data, clamd, timeout=20)).signature.startswith("Eicar")


@pytest.mark.clamd
def test_real_clamd_concurrency_is_capped(clamd):
    client = cl.Clamd((clamd,), timeout=20, concurrency=2)

    async def many():
        return await asyncio.gather(*(client.scan_bytes(samples.testfile("clam.zip")) for _ in range(10)))

    results = run(many())
    assert all(r.signature.startswith("ClamAV-Test-File") for r in results)
    assert run(client.ping()) == clamd
