"""The container's HEALTHCHECK: ``GET /healthz`` where the relay serves its metrics.

The address is read with the relay's own settings loader (``RELAY_METRICS``, or ``metrics`` in
the file ``RELAY_CONFIG`` names; the environment wins), so moving ``RELAY_METRICS`` moves the
check with it. A wildcard address (0.0.0.0, ::) is checked on loopback. A file given only as
``serve --config FILE`` is not seen here: give it as ``RELAY_CONFIG`` instead, or keep
``RELAY_METRICS`` (the image sets it, and it wins over the file anyway).

Exit 0 when /healthz answers 200; 1 otherwise, with the reason on stderr.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request

from relay.config import Settings
from relay.errors import ConfigError

LOOPBACK = {"0.0.0.0": "127.0.0.1", "::": "::1"}


def healthz_url(settings: Settings) -> str | None:
    """The /healthz URL for ``settings.metrics``; None when metrics are off."""
    if settings.metrics is None:
        return None
    host = LOOPBACK.get(settings.metrics.host, settings.metrics.host)
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{settings.metrics.port}/healthz"


def main() -> int:
    try:
        settings = Settings.load()
    except ConfigError as exc:
        print(f"healthcheck: settings: {exc}", file=sys.stderr)
        return 1
    url = healthz_url(settings)
    if url is None:
        print("healthcheck: RELAY_METRICS is empty, so there is no /healthz to check", file=sys.stderr)
        return 1
    try:
        with urllib.request.urlopen(url, timeout=4) as response:
            status = response.status
    except (urllib.error.URLError, OSError) as exc:
        print(f"healthcheck: {url}: {getattr(exc, 'reason', exc)}", file=sys.stderr)
        return 1
    if status != 200:
        print(f"healthcheck: {url}: HTTP {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
