"""A rule's reason: a template whose placeholders are filled from facts, never from evidence.

Placeholders (``{type}``, ``{count}``, ``{where}``...; the full list is
``schema.PLACEHOLDERS``) are checked at load. Filling uses only finding kinds,
types, counts and locations, and envelope counts: a finding's ``evidence`` is
never read, so a reason cannot carry the personal data that was detected.
Every filled value has control characters escaped and its length bounded,
because reasons end up in SMTP replies and log lines.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from relay.findings import Finding
from relay.log import clean
from relay.policy import schema
from relay.policy.facts import EvalContext

_MAX_ITEMS = 3
_MAX_VALUE = 120
_MAX_REASON = 400


def check(template: str) -> list[str]:
    """Placeholder names in ``template`` that the language does not know."""
    return [name for name in schema.placeholders_in(template) if name not in schema.PLACEHOLDERS]


def _unique(values: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(v for v in values if v))


def _join(values: Sequence[str]) -> str:
    items = _unique(values)
    if not items:
        return "-"
    shown = ", ".join(items[:_MAX_ITEMS])
    if len(items) > _MAX_ITEMS:
        shown += f" and {len(items) - _MAX_ITEMS} more"
    return shown


def _types(cited: Sequence[Finding]) -> str:
    counts: dict[str, int] = {}
    for f in cited:
        key = f.type or f.kind
        counts[key] = counts.get(key, 0) + f.count
    if not counts:
        return "-"
    items = [f"{k} ({n})" for k, n in counts.items()]
    shown = ", ".join(items[:_MAX_ITEMS + 2])
    if len(items) > _MAX_ITEMS + 2:
        shown += f" and {len(items) - _MAX_ITEMS - 2} more"
    return shown


_FILL: dict[str, Callable[..., str]] = {
    "kind": lambda ctx, cited, rule, n: _join([f.kind for f in cited]),
    "type": lambda ctx, cited, rule, n: _join([f.type for f in cited]),
    "signature": lambda ctx, cited, rule, n: _join([f.type for f in cited]),
    "scanner": lambda ctx, cited, rule, n: _join([f.type for f in cited]),
    "types": lambda ctx, cited, rule, n: _types(cited),
    "count": lambda ctx, cited, rule, n: str(sum(f.count for f in cited)),
    "where": lambda ctx, cited, rule, n: _join([f.where for f in cited]),
    "sender_group": lambda ctx, cited, rule, n: ctx.sender_group,
    "recipients": lambda ctx, cited, rule, n: str(n),
    "external": lambda ctx, cited, rule, n: str(len(ctx.external)),
    "visible": lambda ctx, cited, rule, n: str(ctx.visible),
    "size": lambda ctx, cited, rule, n: str(ctx.message.size),
    "rule": lambda ctx, cited, rule, n: rule.id,
    "clause": lambda ctx, cited, rule, n: rule.clause,
}
assert set(_FILL) == set(schema.PLACEHOLDERS)


def _safe(value: str, limit: int = _MAX_VALUE) -> str:
    """``relay.log.clean`` with a fast path for the usual short, printable value."""
    if len(value) <= limit and value.isprintable():
        return value
    return clean(value, limit)


def compile_reason(template: str) -> Callable[..., str]:
    """A function ``(ctx, cited, rule, n_recipients) -> str`` that fills ``template``."""
    names = tuple(dict.fromkeys(schema.placeholders_in(template)))
    if not names:
        literal = template.replace("{{", "{").replace("}}", "}")
        return lambda ctx, cited, rule, n: literal
    fillers = tuple((name, _FILL[name]) for name in names)

    def fill(ctx: EvalContext, cited: Sequence[Finding], rule, n: int) -> str:
        values = {name: _safe(fn(ctx, cited, rule, n)) for name, fn in fillers}
        return _safe(template.format_map(values), _MAX_REASON)

    return fill
