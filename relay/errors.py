"""The relay's exception tree. A class exists only where some code catches it.

    RelayError
    ├── ConfigError              settings file / environment invalid (start-up stops)
    ├── PolicyError              policy file invalid (file, line, what was expected)
    ├── UpstreamError            the next hop could not take the message
    │   ├── UpstreamUnavailable  refused connection, timeout, dropped session (always transient)
    │   └── UpstreamRejected     the next hop answered 4xx/5xx; carries its reply
    ├── ScannerError             a scanner could not give an answer (becomes a finding)
    │   └── ScannerUnavailable   the service behind it is down, slow or answers garbage
    └── StoreError               the quarantine store could not do what was asked
        ├── StoreUnavailable     the database cannot be reached or written
        ├── NotFound             no held message with that id
        └── AlreadyHandled       the message was released or deleted before

Foreign exceptions (OSError, aiosmtplib, sqlite3, psycopg, clamd) are translated
at the boundary of the module that talks to them: ``raise Ours(...) from exc``.
"""

from __future__ import annotations


class RelayError(Exception):
    """Base of every error the relay raises on purpose."""


class ConfigError(RelayError):
    """A setting is missing, unknown or invalid."""


class PolicyError(RelayError):
    """A policy file is invalid. The message names file, line and expectation."""


class UpstreamError(RelayError):
    """The next hop did not take the message."""


class UpstreamUnavailable(UpstreamError):
    """The next hop could not be reached, timed out, or dropped the session."""


class UpstreamRejected(UpstreamError):
    """The next hop answered with an error reply."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code} {message}")
        self.code = code
        self.message = message

    @property
    def permanent(self) -> bool:
        return 500 <= self.code < 600


class ScannerError(RelayError):
    """A scanner could not give an answer."""


class ScannerUnavailable(ScannerError):
    """The service behind a scanner is down, too slow, or answered garbage."""


class StoreError(RelayError):
    """The quarantine store failed."""


class StoreUnavailable(StoreError):
    """The quarantine store cannot be reached or written."""


class NotFound(StoreError):
    """No held message with that id."""


class AlreadyHandled(StoreError):
    """The held message was already released or deleted."""
