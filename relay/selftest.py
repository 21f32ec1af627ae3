"""``relay selftest``: check that every part the relay depends on works, before it serves mail.

Each check returns a :class:`CheckResult` (PASS, FAIL or SKIP, with the reason);
the command prints one line per check and exits 0 only if none failed. The
checks use the same settings, policy loader, clamd client, quarantine store and
TLS settings as ``relay serve``, so a PASS means the relay would start and work:

- **settings**: loaded and validated (done by the command; a failure stops there);
- **tls**: the STARTTLS certificate and key load, and the certificate's names and expiry;
- **policy**: loads and compiles; its name, version and rule count;
- **clamd** (each address): PING, VERSION, and a scan of the EICAR test string,
  which must come back FOUND -- a clamd that calls EICAR clean has no usable
  signatures and would pass every virus;
- **quarantine**: the store opens (creating or migrating its schema), a probe row
  is written, read back and deleted inside a transaction that is rolled back;
- **next hop**: connects, EHLO, lists the capabilities, tries STARTTLS as the relay
  would (``upstream_tls``), QUIT; no mail is sent;
- **dkim** (each key): loads and checks it; the DNS TXT record to publish.

Every check is bounded by a timeout; a hung service is a FAIL, never a hang.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from relay.config import Settings

PASS, FAIL, SKIP = "PASS", "FAIL", "SKIP"
CHECK_TIMEOUT = 15.0        # seconds for one check at most (clamd and the next hop use their own, if shorter)
PROBE_VERSION = -1          # the schema_version row written and removed by the store probe


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    status: str             # PASS, FAIL or SKIP
    detail: str             # what was found, or why it failed
    info: dict[str, object] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.status == FAIL

    def as_dict(self) -> dict[str, object]:
        return {"name": self.name, "status": self.status, "detail": self.detail, **self.info}


def _error(exc: BaseException) -> str:
    text = str(exc).strip()
    return text if text else type(exc).__name__


async def _bounded(name: str, timeout: float, check: Callable[[], Awaitable[CheckResult]]) -> CheckResult:
    try:
        async with asyncio.timeout(timeout):
            return await check()
    except TimeoutError:
        return CheckResult(name, FAIL, f"no answer within {timeout:g}s")
    except Exception as exc:  # noqa: BLE001 - any failure of a part is reported as that part's FAIL
        return CheckResult(name, FAIL, _error(exc))


# --------------------------------------------------------------------------- the checks


def check_tls(settings: Settings) -> CheckResult:
    """The client-side STARTTLS certificate (tls_cert/tls_key), if configured."""
    if settings.tls_cert is None:
        return CheckResult("tls", SKIP, "no tls_cert: the relay offers no STARTTLS to clients")
    from cryptography import x509

    from relay.serving import server_tls_context

    try:
        server_tls_context(settings)
        cert = x509.load_pem_x509_certificate(settings.tls_cert.read_bytes())
    except (OSError, ssl.SSLError, ValueError) as exc:
        return CheckResult("tls", FAIL, f"cannot load {settings.tls_cert} / {settings.tls_key}: {_error(exc)}")
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
            x509.DNSName)
    except x509.ExtensionNotFound:
        names = []
    subject = cert.subject.rfc4514_string()
    expires = cert.not_valid_after_utc
    info = {"subject": subject, "names": names, "expires": expires.isoformat()}
    if expires <= dt.datetime.now(dt.timezone.utc):
        return CheckResult("tls", FAIL, f"certificate {subject} expired on {expires:%Y-%m-%d}", info)
    return CheckResult("tls", PASS, f"{subject}, names {', '.join(names) or '(none)'}, "
                                    f"expires {expires:%Y-%m-%d}", info)


def check_policy(settings: Settings) -> CheckResult:
    from relay.errors import PolicyError
    from relay.policy import load_policy

    try:
        policy = load_policy(settings.policy)
    except PolicyError as exc:
        return CheckResult("policy", FAIL, _error(exc))
    monitored = sum(1 for rule in policy.rules if getattr(rule, "monitor", False))
    info = {"policy_name": policy.name, "version": policy.version, "rules": len(policy.rules),
            "path": str(settings.policy)}
    mode = ", whole policy in monitor mode" if policy.monitor else (f", {monitored} in monitor mode" if monitored else "")
    return CheckResult("policy", PASS, f"{policy.name!r} version {policy.version}, {len(policy.rules)} rules{mode}",
                       info)


async def check_clamd(settings: Settings, url: str) -> CheckResult:
    from relay import clamd

    name = f"clamd {url}"
    timeout = min(settings.clamd_timeout, CHECK_TIMEOUT)
    await clamd.ping(url, timeout)
    version = await clamd.version(url, timeout)
    result = await clamd.scan_bytes(clamd.EICAR, (url,), timeout=timeout)
    info = {"version": version}
    if result.clean:
        return CheckResult(name, FAIL, f"answered OK (clean) for the EICAR test string: its signature database is "
                                       f"missing or empty, so it would pass every virus ({version})", info)
    info["eicar"] = result.signature
    return CheckResult(name, PASS, f"PONG; {version}; EICAR found as {result.signature}", info)


async def check_quarantine(settings: Settings) -> CheckResult:
    from relay.quarantine import open_store

    url = settings.quarantine
    if not url.startswith("sqlite:///"):
        await (await _connect_postgres(url)).close()    # fails fast, with the server's reason (the pool would retry for a while)
    async with open_store(url) as store:
        await store.ping()              # connects, creates or migrates the schema
    if url.startswith("sqlite:///"):
        version, held = await asyncio.to_thread(_probe_sqlite, url[len("sqlite:///"):])
    else:
        version, held = await _probe_postgres(url)
    shown = _safe_url(url)
    return CheckResult("quarantine", PASS, f"{shown}: schema version {version}, writable (probe row written, read "
                                           f"and deleted), {held} held", {"schema_version": version, "held": held})


def _safe_url(url: str) -> str:
    """The store URL without user, password or query (which may carry a password)."""
    if not url.startswith("postgres"):
        return url
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}{f':{parts.port}' if parts.port else ''}{parts.path}"


_PROBE = (f"INSERT INTO schema_version (version) VALUES ({PROBE_VERSION})",
          f"SELECT count(*) FROM schema_version WHERE version = {PROBE_VERSION}",
          f"DELETE FROM schema_version WHERE version = {PROBE_VERSION}",
          "SELECT coalesce(max(version), 0) FROM schema_version",
          "SELECT count(*) FROM held WHERE status = 'held'")


def _probe_sqlite(path: str) -> tuple[int, int]:
    from relay.quarantine.sqlite import BUSY_TIMEOUT_MS

    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")          # takes the write lock: fails on a read-only file or directory
        try:
            conn.execute(_PROBE[0])
            if conn.execute(_PROBE[1]).fetchone()[0] < 1:
                raise RuntimeError("the probe row written to schema_version could not be read back")
            conn.execute(_PROBE[2])
            version = conn.execute(_PROBE[3]).fetchone()[0]
            held = conn.execute(_PROBE[4]).fetchone()[0]
        finally:
            conn.execute("ROLLBACK")
        return int(version), int(held)
    except sqlite3.Error as exc:
        raise RuntimeError(f"quarantine database {path}: {exc}") from exc
    finally:
        conn.close()


async def _connect_postgres(url: str):
    import psycopg

    try:
        return await psycopg.AsyncConnection.connect(url, connect_timeout=10)
    except psycopg.Error as exc:
        raise RuntimeError(f"cannot connect to the quarantine database {_safe_url(url)}: "
                           f"{' '.join(_error(exc).split())}") from exc


async def _probe_postgres(url: str) -> tuple[int, int]:
    import psycopg

    conn = await _connect_postgres(url)
    try:
        async with conn.transaction(force_rollback=True):
            await conn.execute(_PROBE[0])
            if (await (await conn.execute(_PROBE[1])).fetchone())[0] < 1:
                raise RuntimeError("the probe row written to schema_version could not be read back")
            await conn.execute(_PROBE[2])
            version = (await (await conn.execute(_PROBE[3])).fetchone())[0]
            held = (await (await conn.execute(_PROBE[4])).fetchone())[0]
        return int(version), int(held)
    except psycopg.Error as exc:
        raise RuntimeError(f"quarantine database: {_error(exc)}") from exc
    finally:
        await conn.close()


async def check_next_hop(settings: Settings) -> CheckResult:
    import socket

    import aiosmtplib

    from relay.upstream import client_tls_context

    hop = settings.upstream
    name = f"next hop {hop}"
    local = settings.hostname or await asyncio.to_thread(socket.getfqdn)
    smtp = aiosmtplib.SMTP(hostname=hop.host, port=hop.port, local_hostname=local, start_tls=False,
                           timeout=min(settings.upstream_timeout, CHECK_TIMEOUT))
    try:
        try:
            await smtp.connect()
            await smtp.ehlo()
        except aiosmtplib.SMTPConnectError as exc:
            return CheckResult(name, FAIL, f"cannot connect: {_error(exc)}")
        except (aiosmtplib.SMTPException, OSError) as exc:
            return CheckResult(name, FAIL, f"no usable greeting or EHLO answer: {_error(exc)}")
        extensions = sorted(k.upper() for k in smtp.esmtp_extensions)
        info: dict[str, object] = {"capabilities": extensions, "starttls": "STARTTLS" in extensions}
        shown = ", ".join(extensions) or "(none)"
        if "STARTTLS" not in extensions:
            if settings.upstream_tls == "required":
                return CheckResult(name, FAIL, f"does not offer STARTTLS but upstream_tls is required "
                                               f"(capabilities: {shown})", info)
            tls = "no STARTTLS offered: mail goes to it in clear text"
        elif settings.upstream_tls == "off":
            tls = "STARTTLS offered, not used (upstream_tls = off)"
        else:
            context = await asyncio.to_thread(client_tls_context, settings.upstream_tls_verify)
            try:
                await smtp.starttls(tls_context=context, validate_certs=settings.upstream_tls_verify)
            except (aiosmtplib.SMTPException, ssl.SSLError, OSError) as exc:
                return CheckResult(name, FAIL, f"STARTTLS failed ({_error(exc)}); the relay could not deliver "
                                               f"(upstream_tls = {settings.upstream_tls}, verify = "
                                               f"{settings.upstream_tls_verify})", info)
            version = smtp.get_transport_info("ssl_object").version()
            tls = f"STARTTLS ok ({version}{', certificate verified' if settings.upstream_tls_verify else ''})"
            info["tls_version"] = version
        try:
            await smtp.quit()
        except aiosmtplib.SMTPException:
            pass
        return CheckResult(name, PASS, f"EHLO ok; capabilities: {shown}; {tls}; no mail sent", info)
    finally:
        smtp.close()


def check_dkim(settings: Settings) -> list[CheckResult]:
    if not settings.signing_keys:
        return [CheckResult("dkim", SKIP, "no signing keys configured: mail is forwarded unsigned")]
    from relay.commands.dkim import record_for
    from relay.dkim import load_key
    from relay.errors import ConfigError

    out = []
    for entry in settings.signing_keys:
        name = f"dkim {entry.selector}._domainkey.{entry.domain}"
        try:
            key = load_key(entry)
        except ConfigError as exc:
            out.append(CheckResult(name, FAIL, _error(exc)))
            continue
        record = record_for(key)
        out.append(CheckResult(name, PASS, f"{key.algorithm}, {key.bits} bits, {key.path}; publish: {record}",
                               {"domain": key.domain, "selector": key.selector, "algorithm": key.algorithm,
                                "record": record}))
    return out


async def run(settings: Settings) -> list[CheckResult]:
    """Every check after settings, in a fixed order (each bounded; none raises)."""
    results = [await _bounded("tls", CHECK_TIMEOUT, lambda: asyncio.to_thread(check_tls, settings)),
               await _bounded("policy", 60.0, lambda: asyncio.to_thread(check_policy, settings))]
    for url in settings.clamd:
        results.append(await _bounded(f"clamd {url}", CHECK_TIMEOUT * 3, lambda url=url: check_clamd(settings, url)))
    results.append(await _bounded("quarantine", CHECK_TIMEOUT * 2, lambda: check_quarantine(settings)))
    results.append(await _bounded(f"next hop {settings.upstream}", CHECK_TIMEOUT * 2,
                                  lambda: check_next_hop(settings)))
    try:
        results.extend(await asyncio.to_thread(check_dkim, settings))
    except Exception as exc:  # noqa: BLE001 - reported as the dkim check's FAIL
        results.append(CheckResult("dkim", FAIL, _error(exc)))
    return results
