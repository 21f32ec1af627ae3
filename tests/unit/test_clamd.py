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


@pytest.mark.clamd
def test_one_connection_serves_many_scans_and_is_closed_when_the_loop_ends(clamd):
    client = cl.Clamd((clamd,), timeout=20, concurrency=2)
    kept = []

    async def go():
        results = [await client.scan_bytes(data) for data in (b"text", samples.EICAR, b"more text", samples.EICAR)]
        results += await asyncio.gather(*(client.scan_bytes(samples.EICAR) for _ in range(6)))
        kept.extend(client._idle)
        return results

    results = run(go())
    assert [r.clean for r in results[:4]] == [True, False, True, False]
    assert all(r.signature.startswith("Eicar-Test-Signature") for r in results[4:])
    assert client.opened == 2          # one for the sequential scans, a second when two ran at once
    assert kept and all(s.writer.is_closing() for s in kept)   # the ended loop closed them
    assert run(client.scan_bytes(samples.EICAR)).signature.startswith("Eicar")   # a new loop, new sessions
    assert client.opened == 3


@pytest.mark.clamd
def test_a_session_ended_by_clamd_is_not_reused(clamd):
    """Over clamd's StreamMaxLength (25M), clamd answers the error and ends the session."""
    client = cl.Clamd((clamd,), timeout=60, concurrency=1)

    async def go():
        first = await client.scan_bytes(b"clean")
        with pytest.raises(ScannerUnavailable, match="StreamMaxLength"):
            await client.scan_bytes(b"\1" * (26 * 1024 * 1024))
        after = await client.scan_bytes(samples.EICAR)
        return first, after

    first, after = run(go())
    assert first.clean and after.signature.startswith("Eicar")


@pytest.mark.clamd
def test_a_kept_connection_to_a_restarted_clamd_is_replaced_transparently(tmp_path):
    from tests.fixtures.clamd import start_clamd_unix, stop_pid

    url, pid = start_clamd_unix(tmp_path)
    client = cl.Clamd((url,), timeout=20, concurrency=2)

    async def go():
        nonlocal pid
        try:
            before = await client.scan_bytes(samples.EICAR)
            stop_pid(pid)                             # clamd goes away with our session open ...
            url_again, pid = await asyncio.to_thread(start_clamd_unix, tmp_path)   # ... and comes back
            assert url_again == url
            after = await client.scan_bytes(samples.EICAR)
            return before, after
        finally:
            stop_pid(pid)

    before, after = run(go())
    assert before.signature.startswith("Eicar") and after.signature.startswith("Eicar")
    assert client.opened == 2


def test_a_kept_connection_closed_as_the_next_scan_starts_is_replaced_once():
    """clamd's own idle time-out can close a kept session just as a scan is written to it
    (a race a real clamd cannot be made to show on demand): that scan goes to a new
    connection; a connection that fails after a fresh connect is not retried."""
    connections = []

    async def fake_clamd(reader, writer):       # IDSESSION; the first connection dies on its 2nd scan
        number = len(connections)
        connections.append(writer)
        try:
            assert await reader.readuntil(b"\0") == b"zIDSESSION\0"
            for n in range(1, 100):
                assert await reader.readuntil(b"\0") == b"zINSTREAM\0"
                while size := int.from_bytes(await reader.readexactly(4), "big"):
                    await reader.readexactly(size)
                if number == 0 and n == 2 or number == 2:
                    break                       # closes without a reply
                writer.write(b"%d: stream: OK\0" % n)
        except asyncio.IncompleteReadError:
            pass
        finally:
            writer.close()

    async def go():
        server = await asyncio.start_server(fake_clamd, "127.0.0.1", 0)
        url = f"tcp://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        client = cl.Clamd((url,), timeout=10, concurrency=1)
        try:
            first = await client.scan_bytes(b"one")
            second = await client.scan_bytes(b"two")      # kept connection dies: retried on a new one
            opened_after_retry = client.opened
            client._idle[0].close()
            client._idle.clear()
            with pytest.raises(ScannerUnavailable, match="without a complete reply"):
                await client.scan_bytes(b"three")         # a new connection that dies: no retry
            return first, second, opened_after_retry, client.opened
        finally:
            server.close()
            await server.wait_closed()

    first, second, opened_after_retry, opened = run(go())
    assert first.clean and second.clean
    assert (opened_after_retry, opened, len(connections)) == (2, 3, 3)
