"""The soak's next hop: the capture sink of ``tests/fixtures/smtp.py`` with the ways a real one goes away.

On top of :class:`~tests.fixtures.smtp.FaultyHandler`'s faults (451 at the end
of DATA, session aborted in DATA, late answers) the soak needs a next hop that

- refuses every recipient with a 4xx (:attr:`SoakHandler.rcpt_reply`);
- is not listening at all for a while: connection refused (:meth:`SoakSink.down`);
- greets with ``421`` and hangs up, as an overloaded MTA does (:meth:`SoakSink.down`
  with a greeting).

Going down also aborts the sessions already open, as a restarting MTA does, so
the relay's kept next-hop sessions meet the fault too. Coming back listens on
the same port again.
"""

from __future__ import annotations

import asyncio

from tests.fixtures.smtp import FaultyHandler, SinkServer


class SoakHandler(FaultyHandler):
    def __init__(self) -> None:
        super().__init__()
        self.rcpt_reply: str | None = None       # e.g. "450 4.2.1 mailbox busy": every RCPT answered with it

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.rcpt_reply:
            return self.rcpt_reply
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)


class _Greeter(asyncio.Protocol):
    """What listens while the next hop is "overloaded": one greeting line, then the connection closes."""

    def __init__(self, greeting: bytes) -> None:
        self.greeting = greeting

    def connection_made(self, transport) -> None:
        transport.write(self.greeting)
        transport.close()


class SoakSink(SinkServer):
    """A :class:`SinkServer` whose listener can be taken away for a while and brought back on the same port."""

    def __init__(self) -> None:
        super().__init__(SoakHandler())
        self._listener: asyncio.Server | None = None
        self._factory = None
        self._bind = None            # the loop's own create_server

    async def _serve(self) -> None:
        # The parent binds inside its _serve; keep the server and the protocol factory it binds
        # with, so the listener can be closed and opened again on the same port.
        loop = asyncio.get_running_loop()
        self._bind = loop.create_server

        async def remember(factory, host, port, **kwargs):
            self._factory = factory
            self._listener = await self._bind(factory, host, port, **kwargs)
            return self._listener

        loop.create_server = remember
        try:
            await super()._serve()
        finally:
            if self._listener is not None:       # the one opened again after a fault, if any
                self._listener.close()
                await self._listener.wait_closed()

    async def _down(self, duration: float, greeting: bytes | None) -> None:
        self._listener.close()
        for transport in list(self.handler.transports):
            transport.abort()
        stand_in = None
        if greeting is not None:
            stand_in = await self._bind(lambda: _Greeter(greeting), self.host, self.port)
        try:
            await asyncio.sleep(duration)
        finally:
            if stand_in is not None:
                stand_in.close()
                await stand_in.wait_closed()
            self._listener = await self._bind(self._factory, self.host, self.port)

    async def down(self, duration: float, greeting: bytes | None = None) -> None:
        """Not listening (``greeting=None``: connection refused) or greeting with ``greeting`` and
        hanging up, for ``duration`` seconds; open sessions are cut at the start. Awaitable from
        any other event loop."""
        future = asyncio.run_coroutine_threadsafe(self._down(duration, greeting), self._loop)
        await asyncio.wrap_future(future)
