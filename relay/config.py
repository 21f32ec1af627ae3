"""Settings: one frozen object, read once from a TOML file and ``RELAY_*`` variables.

Every setting is a field of :class:`Settings` with its parser, its environment
variable (``RELAY_`` + upper-case name) and a one-line description. Precedence:
built-in default < TOML file (``--config`` or ``RELAY_CONFIG``) < environment.
An unknown key or a bad value raises :class:`ConfigError` naming the key, where
it came from and what was expected. The configuration reference in docs/admin.md is
checked against :func:`describe` by a test.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from relay.errors import ConfigError

ENV_PREFIX = "RELAY_"

# --------------------------------------------------------------------------- parsers


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("expected a string")
    return value


def _int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("expected an integer")
    if isinstance(value, int):
        out = value
    elif isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
        out = int(value)
    else:
        raise ValueError("expected an integer")
    if out < 0:
        raise ValueError("expected a non-negative integer")
    return out


def _positive_int(value: Any) -> int:
    out = _int(value)
    if out < 1:
        raise ValueError("expected an integer of at least 1")
    return out


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError("expected true or false")


_SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1000, "kib": 1024, "m": 1024**2,
               "mb": 1000**2, "mib": 1024**2, "g": 1024**3, "gb": 1000**3, "gib": 1024**3}


def _size(value: Any) -> int:
    """Bytes: an integer, or a string such as ``25MiB``, ``512k``, ``10MB``."""
    if isinstance(value, int) and not isinstance(value, bool):
        return _positive_int(value)
    if isinstance(value, str):
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", value)
        if m and m.group(2).lower() in _SIZE_UNITS:
            out = int(float(m.group(1)) * _SIZE_UNITS[m.group(2).lower()])
            if out >= 1:
                return out
    raise ValueError("expected a size such as 26214400, '25MiB' or '512KiB'")


_DURATION_UNITS = {"ms": 0.001, "s": 1, "": 1, "m": 60, "h": 3600, "d": 86400}


def _duration(value: Any) -> float:
    """Seconds: a number, or a string such as ``30s``, ``500ms``, ``5m``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        out = float(value)
    elif isinstance(value, str) and (m := re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|)\s*", value)):
        out = float(m.group(1)) * _DURATION_UNITS[m.group(2)]
    else:
        raise ValueError("expected a duration such as 30, '30s', '500ms' or '5m'")
    if out <= 0:
        raise ValueError("expected a duration above zero")
    return out


@dataclass(frozen=True, slots=True)
class HostPort:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def _hostport(value: Any) -> HostPort:
    text = _str(value).strip()
    m = re.fullmatch(r"\[([0-9a-fA-F:.]+)\]:(\d+)", text) or re.fullmatch(r"([^:\s\[\]]+):(\d+)", text)
    if not m or not 0 < int(m.group(2)) < 65536:
        raise ValueError("expected host:port, e.g. 127.0.0.1:10025 or [::1]:10025")
    return HostPort(m.group(1), int(m.group(2)))


def _optional_hostport(value: Any) -> HostPort | None:
    if value in ("", None):
        return None
    return _hostport(value)


def _cidrs(value: Any) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    items = value if isinstance(value, list) else _str(value).replace(",", " ").split()
    out = []
    for item in items:
        try:
            out.append(ipaddress.ip_network(_str(item).strip(), strict=False))
        except ValueError as exc:
            raise ValueError(f"{item!r} is not a network in CIDR form (e.g. 10.0.0.0/8)") from exc
    if not out:
        raise ValueError("expected at least one network in CIDR form")
    return tuple(out)


_CLAMD_URL = re.compile(r"tcp://[^\s/]+:\d+|unix:///\S+")


def _clamd_urls(value: Any) -> tuple[str, ...]:
    items = value if isinstance(value, list) else _str(value).replace(",", " ").split()
    out = tuple(_str(i).strip() for i in items)
    if not out:
        raise ValueError("expected at least one clamd address")
    for url in out:
        if not _CLAMD_URL.fullmatch(url):
            raise ValueError(f"{url!r}: expected tcp://host:port or unix:///path/to/socket")
    return out


def _quarantine_url(value: Any) -> str:
    text = _str(value).strip()
    if not (text.startswith("sqlite:///") and len(text) > len("sqlite:///")) and not re.match(
        r"postgres(ql)?://", text
    ):
        raise ValueError("expected sqlite:///path/to/file.db or postgresql://user@host/db")
    return text


def _path(value: Any) -> Path:
    text = _str(value).strip()
    if not text:
        raise ValueError("expected a file path")
    return Path(text)


def _optional_path(value: Any) -> Path | None:
    if value in ("", None):
        return None
    return _path(value)


def _choice(*choices: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        text = _str(value).strip().lower()
        if text not in choices:
            raise ValueError("expected one of: " + ", ".join(choices))
        return text

    return parse


_HEADER_NAME = re.compile(r"[!-9;-~]{1,64}")


def _header_name(value: Any) -> str:
    text = _str(value).strip()
    if not _HEADER_NAME.fullmatch(text):
        raise ValueError("expected a header field name (printable ASCII, no colon, at most 64 characters)")
    return text


def _milter_address(value: Any) -> str:
    text = _str(value).strip()
    if not re.fullmatch(r"inet6?:[^\s]+:\d+|unix:/\S+", text):
        raise ValueError("expected inet:host:port or unix:/path/to/socket")
    return text


def _dkim_keys(value: Any) -> tuple[DkimKey, ...]:
    """A TOML array of tables: ``[[dkim_keys]] domain, selector, key``."""
    if not isinstance(value, list):
        raise ValueError("expected an array of tables with domain, selector and key")
    out = []
    for item in value:
        if not isinstance(item, dict) or set(item) != {"domain", "selector", "key"}:
            raise ValueError("each [[dkim_keys]] entry needs exactly: domain, selector, key")
        out.append(DkimKey(_str(item["domain"]).lower(), _str(item["selector"]), _path(item["key"])))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class DkimKey:
    domain: str
    selector: str
    key: Path


# --------------------------------------------------------------------------- settings


def setting(default: Any, parse: Callable[[Any], Any], doc: str, env: bool = True) -> Any:
    return field(default=default, metadata={"parse": parse, "doc": doc, "env": env})


@dataclass(frozen=True, slots=True)
class Settings:
    # -- where the relay sits
    listen: HostPort = setting(HostPort("127.0.0.1", 10025), _hostport,
                               "Address the SMTP front listens on (host:port).")
    upstream: HostPort = setting(HostPort("127.0.0.1", 10026), _hostport,
                                 "The next hop that accepted and tagged mail is forwarded to (host:port).")
    allowed_clients: tuple = setting(_cidrs("127.0.0.0/8 ::1/128"), _cidrs,
                                     "Networks (CIDRs, comma or space separated) allowed to send; others get 5xx before DATA.")
    hostname: str = setting("", _str, "Name used in the SMTP banner and EHLO; default: the machine's FQDN.")
    workers: int = setting(1, _positive_int, "Processes serving the listen port (SO_REUSEPORT).")
    # -- services
    clamd: tuple = setting(("tcp://127.0.0.1:3310",), _clamd_urls,
                           "clamd addresses, tcp://host:port or unix:///path, comma separated; tried in order (failover).")
    policy: Path = setting(Path("policies/icmp-email-use.yaml"), _path, "Policy file (YAML).")
    quarantine: str = setting("sqlite:///var/quarantine.sqlite3", _quarantine_url,
                              "Quarantine store: sqlite:///path or postgresql://user@host/db.")
    metrics: HostPort | None = setting(None, _optional_hostport,
                                       "host:port serving /metrics, /healthz and /readyz; empty: off.")
    milter_listen: str = setting("inet:127.0.0.1:10027", _milter_address,
                                 "Address `relay milter` listens on: inet:host:port or unix:/path.")
    # -- TLS
    tls_cert: Path | None = setting(None, _optional_path, "PEM certificate offered with STARTTLS to clients; empty: no STARTTLS.")
    tls_key: Path | None = setting(None, _optional_path, "PEM private key for tls_cert.")
    upstream_tls: str = setting("opportunistic", _choice("off", "opportunistic", "required"),
                                "STARTTLS to the next hop: off, opportunistic (when offered) or required.")
    upstream_tls_verify: bool = setting(True, _bool, "Verify the next hop's certificate when using STARTTLS.")
    # -- DKIM
    dkim_domain: str = setting("", _str, "Signing domain for the single key given by dkim_selector and dkim_key.")
    dkim_selector: str = setting("", _str, "DKIM selector for dkim_domain.")
    dkim_key: Path | None = setting(None, _optional_path, "PEM private key (RSA 2048+ or Ed25519) for dkim_domain.")
    dkim_keys: tuple = setting((), _dkim_keys, "More signing keys: TOML [[dkim_keys]] tables with domain, selector, key.", env=False)
    dkim_envelope_fallback: bool = setting(False, _bool, "Sign with the envelope sender's domain key when the From domain has none.")
    # -- tagging
    action_header: str = setting("X-Policy-Action", _header_name, "Header naming the action on forwarded mail.")
    rules_header: str = setting("X-Policy-Rules", _header_name, "Header listing the matched rule ids on forwarded mail.")
    # -- SMTP limits
    max_message_size: int = setting(26214400, _size, "Largest message accepted (advertised with SIZE; 552 5.3.4 over it).")
    max_recipients: int = setting(1000, _positive_int, "Recipients per message (452 4.5.3 past it).")
    max_line_length: int = setting(1000, _positive_int, "Longest SMTP command line, CRLF included (500 5.5.2 past it).")
    max_header_size: int = setting(1048576, _size, "Largest header section of a message (552 5.3.4 past it).")
    max_sessions: int = setting(200, _positive_int, "Concurrent client sessions per worker (421 4.7.0 past it).")
    command_timeout: float = setting(300.0, _duration, "Idle time allowed between client commands.")
    data_timeout: float = setting(600.0, _duration, "Time allowed to receive one message's DATA.")
    upstream_timeout: float = setting(60.0, _duration, "Time allowed for each exchange with the next hop.")
    shutdown_grace: float = setting(30.0, _duration, "On SIGTERM, time in-flight transactions get to finish.")
    # -- scanning limits
    scan_timeout: float = setting(60.0, _duration, "Time one scanner gets for one message before it counts as failed.")
    clamd_timeout: float = setting(30.0, _duration, "Time one clamd scan may take.")
    clamd_concurrency: int = setting(8, _positive_int, "Scans in flight to clamd at once (per worker); as many connections are kept open between scans (IDSESSION, closed after 5 s unused).")
    clamd_stream_max: int = setting(26214400, _size, "Largest stream sent to clamd (match clamd's StreamMaxLength).")
    max_mime_depth: int = setting(30, _positive_int, "Deepest MIME / message nesting parsed.")
    max_parts: int = setting(1000, _positive_int, "Most MIME parts parsed in one message.")
    max_decoded_bytes: int = setting(104857600, _size, "Most bytes decoded from one message (all parts and members).")
    max_archive_members: int = setting(1000, _positive_int, "Most members listed in one archive.")
    max_archive_depth: int = setting(3, _positive_int, "Deepest archive-in-archive nesting opened.")
    max_compression_ratio: int = setting(100, _positive_int, "Largest uncompressed/compressed ratio of an archive member.")
    max_extract_bytes: int = setting(20971520, _size, "Most text extracted from one message for content checks.")
    extract_timeout: float = setting(20.0, _duration, "Time text extraction may take for one message.")
    # -- logging
    log_format: str = setting("auto", _choice("auto", "json", "console"),
                              "Log format: json, console, or auto (console on a terminal, JSON otherwise).")

    # ---------------------------------------------------------------- loading

    @classmethod
    def load(cls, path: str | os.PathLike | None = None, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from defaults, the TOML file and the environment."""
        environ = os.environ if environ is None else environ
        path = path or environ.get(ENV_PREFIX + "CONFIG") or None
        raw: dict[str, tuple[Any, str]] = {}
        if path:
            try:
                with open(path, "rb") as fh:
                    data = tomllib.load(fh)
            except OSError as exc:
                raise ConfigError(f"cannot read settings file {path}: {exc.strerror}") from exc
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
            for key, value in data.items():
                raw[key] = (value, f"{path}: key {key!r}")
        names = {f.name: f for f in dataclasses.fields(cls)}
        for key, value in environ.items():
            if not key.startswith(ENV_PREFIX) or key == ENV_PREFIX + "CONFIG":
                continue
            name = key[len(ENV_PREFIX):].lower()
            if name in names and names[name].metadata["env"]:
                raw[name] = (value, f"environment {key}")
        return cls._build(raw)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> Settings:
        """Validate ``{name: value}`` into settings (tests and programmatic use)."""
        return cls._build({k: (v, f"setting {k!r}") for k, v in values.items()})

    @classmethod
    def _build(cls, raw: Mapping[str, tuple[Any, str]]) -> Settings:
        fields = {f.name: f for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        for key, (value, origin) in raw.items():
            if key not in fields:
                close = [n for n in fields if n.startswith(key[:4])]
                hint = f" (did you mean {', '.join(close)}?)" if close else ""
                raise ConfigError(f"{origin}: unknown setting{hint}")
            try:
                values[key] = fields[key].metadata["parse"](value)
            except ValueError as exc:
                raise ConfigError(f"{origin}: {exc}") from None
        settings = cls(**values)
        settings._check()
        return settings

    def replace(self, **changes: Any) -> Settings:
        """A copy with already-parsed values changed (tests, --workers)."""
        return dataclasses.replace(self, **changes)

    def _check(self) -> None:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError("tls_cert and tls_key: give both or neither")
        dkim = (self.dkim_domain, self.dkim_selector, self.dkim_key)
        if any(dkim) and not all(dkim):
            raise ConfigError("dkim_domain, dkim_selector and dkim_key: give all three or none")

    @property
    def signing_keys(self) -> tuple[DkimKey, ...]:
        """Every DKIM key, the single-key settings first."""
        single = (DkimKey(self.dkim_domain.lower(), self.dkim_selector, self.dkim_key),) if self.dkim_key else ()
        return single + self.dkim_keys

    def allows(self, address: str) -> bool:
        """True if a client at ``address`` may send through the relay."""
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
            ip = ip.ipv4_mapped
        return any(ip in net for net in self.allowed_clients if net.version == ip.version)


def describe() -> list[tuple[str, str, str, str]]:
    """(name, environment variable or '', default, description) for every setting."""
    out = []
    for f in dataclasses.fields(Settings):
        default = f.default
        if isinstance(default, tuple):
            shown = ", ".join(str(d) for d in default)
        else:
            shown = "" if default is None else str(default)
        out.append((f.name, ENV_PREFIX + f.name.upper() if f.metadata["env"] else "", shown, f.metadata["doc"]))
    return out
