"""A PostgreSQL store that could not reach its database at first recovers once the database answers."""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import urlsplit, urlunsplit

import pytest

from relay.errors import StoreUnavailable
from relay.quarantine.postgres import PostgresStore
from tests.fixtures.common import free_port


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.close()


@pytest.mark.postgres
def test_store_recovers_after_the_database_was_unreachable(postgres_url):
    real = urlsplit(postgres_url)
    port = free_port()
    url = urlunsplit(real._replace(netloc=f"{real.username}@127.0.0.1:{port}" if real.username
                                   else f"127.0.0.1:{port}"))

    writers: list[asyncio.StreamWriter] = []
    pipes: list[asyncio.Future] = []

    async def forward(reader, writer):
        writers.append(writer)
        up_reader, up_writer = await asyncio.open_connection(real.hostname, real.port)
        writers.append(up_writer)
        pipe = asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        pipes.append(pipe)
        await pipe

    async def go():
        store = PostgresStore(url, timeout=2.0)
        try:
            with pytest.raises(StoreUnavailable):          # nothing listens yet: the database is "down"
                await store.ping()
            with pytest.raises((StoreUnavailable, TimeoutError)):   # a caller giving up early (readiness probe)
                async with asyncio.timeout(0.5):
                    await store.ping()
            server = await asyncio.start_server(forward, "127.0.0.1", port)   # the database is back
            async with server:
                for _ in range(40):
                    try:
                        await store.ping(write=True)
                        return True
                    except StoreUnavailable:
                        await asyncio.sleep(0.25)
                return False
        finally:
            await store.close()
            for writer in writers:
                writer.close()
            await asyncio.gather(*pipes, return_exceptions=True)
            for writer in writers:
                with contextlib.suppress(ConnectionError):
                    await writer.wait_closed()

    assert asyncio.run(asyncio.wait_for(go(), 60)) is True
