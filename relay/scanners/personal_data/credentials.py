"""Secrets written out: passwords, private keys, API tokens.

* Password: ``password: X``, ``pwd=X``, ``password - X``, ``my password is X``. A value that is
  a placeholder (``********``, ``<password>``, ``[redacted]``) or an ordinary
  word ("password is incorrect", "password: sent separately") is not one;
  after "is" the value must look like a password (a digit, a symbol or mixed case).
* Private key: a PEM/OpenSSH/PGP ``-----BEGIN ... PRIVATE KEY-----`` block.
* API token: vendor formats with fixed prefixes (AWS ``AKIA``/``ASIA``,
  GitHub ``ghp_``..., ``github_pat_``, Slack ``xox?-``, Stripe ``sk_live_``/``rk_live_``,
  GitLab ``glpat-``, Google ``AIza``); documented examples (``AKIAIOSFODNN7EXAMPLE``)
  are ignored. A generic ``api_key=``/``secret:``/``token=`` value counts
  when it is long (>= 20) and random-looking (Shannon entropy >= 3.5 bits/char,
  letters and digits).
"""

from __future__ import annotations

import re

from relay.findings import Confidence

from . import redact
from .confidence import ChunkContext, Hit
from .validators import shannon_entropy

PASSWORD_ANCHORS = ("password", "passwd", "pwd", "passcode", "passphrase", "pword")
TOKEN_ANCHORS = ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "xoxb-", "xoxp-", "xoxa-", "xoxr-",
                 "xoxs-", "xapp-", "sk_live_", "rk_live_", "glpat-", "akia", "asia", "aiza")
GENERIC_ANCHORS = ("api_key", "apikey", "api-key", "api key", "secret", "client_secret", "access_token",
                   "auth_token", "token", "access_key", "secret_key", "bearer")

_PASSWORD = re.compile(
    r"(?:password|passwd|pwd|passcode|passphrase|pword)s?[ \t]*(?:(?P<sep>[:=]|-(?=[ \t]))|(?P<is>is|will be|was)\b)"
    r"[ \t]*[\"'“‘]?(?P<v>[^\s\"'”’]{4,64})", re.I)
_PLACEHOLDER = re.compile(r"^(?:[*•x.#_\-]+|<.*>|\[.*\]|\{.*\}|\(.*\)?|%.*%|\$\{.*)$", re.I)
_ORDINARY = frozenset("""required incorrect expired reset protected below attached sent same the your my a an
not has was will be is changed change enclosed separately follows following above here there please
same below provided secure strong weak wrong invalid correct needed needs set updated update new old
temporary stored saved unknown forgotten blank empty n/a none null""".split())
_TOKENS = re.compile(
    r"(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9_]{60,90}|xox[baprs]-[A-Za-z0-9\-]{10,80}"
    r"|xapp-[A-Za-z0-9\-]{20,120}|(?:sk|rk)_live_[A-Za-z0-9]{20,99}|glpat-[A-Za-z0-9_\-]{20}"
    r"|(?:AKIA|ASIA)[0-9A-Z]{16}|AIza[0-9A-Za-z_\-]{35}")
_GENERIC = re.compile(
    r"(?:api[_\- ]?key|client[_\-]?secret|access[_\-]?token|auth[_\-]?token|secret[_\-]?key|access[_\-]?key"
    r"|secret|token|bearer)[\"']?[ \t]*(?:[:=]|=>)?[ \t]*[\"']?(?P<v>[A-Za-z0-9_\-+/=.]{20,200})", re.I)
KNOWN_EXAMPLES = frozenset({"AKIAIOSFODNN7EXAMPLE", "ASIAIOSFODNN7EXAMPLE",
                            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"})
PRIVATE_KEY = r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"


def _boundary_before(text: str, pos: int) -> bool:
    return pos == 0 or not text[pos - 1].isalnum()


def password(cc: ChunkContext, pos: int) -> Hit | None:
    text = cc.text
    if not _boundary_before(text, pos):
        return None
    m = _PASSWORD.match(text, pos)
    if not m:
        return None
    value = m.group("v").rstrip(".,;:)!?")
    if len(value) < 4 or _PLACEHOLDER.match(value) or value.lower() in _ORDINARY:
        return None
    if m.group("is") and not (any(c.isdigit() for c in value) or not value.isalnum()
                              or (value != value.lower() and value != value.upper()
                                  and not value.istitle())):
        return None
    return Hit("credential", "password", value, Confidence.HIGH, redact.secret("password: "), pos)


def token(cc: ChunkContext, pos: int) -> Hit | None:
    text = cc.text
    if not _boundary_before(text, pos):
        return None
    m = _TOKENS.match(text, pos)
    if not m or m.group() in KNOWN_EXAMPLES or "EXAMPLE" in m.group():
        return None
    end = m.end()
    if end < len(text) and (text[end].isalnum() or text[end] == "_") and not m.group().startswith("xox"):
        return None
    label = m.group()[:4] if m.group()[:4].isupper() else m.group().split("_")[0].split("-")[0]
    return Hit("credential", "api_token", m.group(), Confidence.HIGH, redact.secret(label + "…"), pos)


def generic(cc: ChunkContext, pos: int) -> Hit | None:
    text = cc.text
    if not _boundary_before(text, pos):
        return None
    m = _GENERIC.match(text, pos)
    if not m:
        return None
    value = m.group("v")
    has_digit = any(c.isdigit() for c in value)
    has_alpha = any(c.isalpha() for c in value)
    if not (has_digit and has_alpha) or shannon_entropy(value) < 3.5 or value in KNOWN_EXAMPLES:
        return None
    return Hit("credential", "api_token", value, Confidence.HIGH, redact.secret("key="), pos)


_PRIVATE_KEY = re.compile(PRIVATE_KEY)


def private_key(cc: ChunkContext, start: int) -> Hit | None:
    m = _PRIVATE_KEY.match(cc.text, start)
    if not m:
        return None
    end = m.end()
    header = m.group()
    body = cc.text[end:end + 120]
    return Hit("credential", "private_key", header + body, Confidence.HIGH, header, start)
