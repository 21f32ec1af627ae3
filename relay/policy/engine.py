"""Evaluate a compiled policy: findings + envelope + message -> one Verdict.

How rules combine (defined here once, documented in ``policies/README.md``):

1. Every rule is evaluated, in file order; *all* matching rules are reported
   (there is no first-match stop). A rule in ``monitor`` mode is reported
   with ``monitor=True`` and changes nothing.
2. A matching rule applies to the recipients of its scope (``recipients:``):
   every recipient, or only the external / internal / distribution-list ones.
   A scoped rule with no recipient in its scope does not match.
3. Each envelope recipient starts at ``defaults.action`` (accept) and gets the
   most severe action of the enforced rules that apply to it
   (accept < tag < hold < tempfail < reject). ``Verdict.action`` is the most
   severe recipient action.
4. Fail closed: when any ``scanner_unavailable`` finding is present and some
   recipient would get less than ``defaults.scanner_failure`` (tempfail), the
   built-in rule ``defaults.scanner_failure`` matches for every recipient.
   Monitor mode never turns this off.
5. ``Verdict.tag`` collects the headers and subject prefixes of the enforced
   tag rules that apply to a recipient whose final action is tag.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from relay.envelope import Envelope
from relay.findings import Finding
from relay.log import clean
from relay.message import ParsedMessage
from relay.policy.facts import EvalContext
from relay.policy.schema import PolicySpec
from relay.verdict import Action, RuleMatch, TagSpec, Verdict

SCANNER_FAILURE_RULE = "defaults.scanner_failure"
SCANNER_FAILURE_CLAUSE = "defaults"


class Policy:
    """A loaded policy. Immutable after load; ``evaluate`` is safe to call from any task or thread."""

    __slots__ = ("spec", "name", "version", "organisation", "custom_detectors", "rules", "monitor", "_default", "_failure",
                 "_tags", "_domains", "_suffixes",
                 "_group_of", "kinds")

    def __init__(self, spec: PolicySpec) -> None:
        self.spec = spec
        self.name = spec.name
        self.version = spec.version
        self.organisation = spec.organisation
        self.custom_detectors = spec.detectors
        self.rules = spec.rules
        self.monitor = spec.monitor
        # Every finding kind some rule (monitored ones too) looks at: scanners reporting none of
        # these need not run (``build_scanners(settings, needed=policy.kinds)``).
        self.kinds: frozenset[str] = frozenset().union(*(r.kinds for r in spec.rules))
        self._default = spec.defaults.action
        self._failure = spec.defaults.scanner_failure
        self._domains = frozenset(spec.organisation.internal_domains)
        self._suffixes = tuple("." + d for d in spec.organisation.internal_domains)
        # senders repeat: remember the group of the last few thousand (fnmatch per pattern is slow)
        self._group_of = functools.lru_cache(maxsize=4096)(spec.organisation.group_of)
        self._tags = {r.id: r.tag for r in spec.rules if r.action is Action.TAG and (r.tag.headers or r.tag.subject_prefix)}

    def __repr__(self) -> str:
        return f"<Policy {self.name or self.spec.path} {self.version} rules={len(self.rules)}>"

    def summary(self) -> dict[str, object]:
        """What ``relay policy validate`` prints: counts per action and mode."""
        actions: dict[str, int] = {}
        for rule in self.rules:
            actions[str(rule.action)] = actions.get(str(rule.action), 0) + 1
        return {
            "file": self.spec.path,
            "name": self.name,
            "version": self.version,
            "mode": "monitor" if self.monitor else "enforce",
            "rules": len(self.rules),
            "monitored_rules": sum(1 for r in self.rules if r.monitor),
            "actions": actions,
            "clauses": sorted({r.clause for r in self.rules}),
            "internal_domains": list(self.organisation.internal_domains),
            "groups": list(self.organisation.groups),
            "distribution_lists": len(self.organisation.distribution_lists),
            "detectors": [d.name for d in self.custom_detectors],
            "kinds": sorted(self.kinds),
            "default_action": str(self._default),
            "scanner_failure": str(self._failure),
        }

    def evaluate(self, envelope: Envelope, message: ParsedMessage, findings: Sequence[Finding]) -> Verdict:
        ctx = EvalContext(envelope, message, findings, self.organisation, self._domains, self._suffixes,
                          self._group_of)
        matches: list[RuleMatch] = []
        n_all = len(envelope.rcpt_tos)
        for rule in self.rules:
            if not rule.test(ctx):
                continue
            scoped = ctx.scope(rule.scope)
            if scoped is not None and not scoped:
                continue
            cited = rule.cite(ctx)
            reason = rule.fill(ctx, cited, rule, n_all if scoped is None else len(scoped))
            matches.append(RuleMatch(rule.id, rule.clause, rule.action, reason, rule.monitor, scoped, rule.notify_sender))
        per_rcpt, action = self._combine(envelope.rcpt_tos, matches)
        failure = self._failure
        if "scanner_unavailable" in ctx.by_kind and (
                any(a < failure for a in per_rcpt.values()) if per_rcpt else action < failure):
            failed = ", ".join(dict.fromkeys(f.type or "unknown" for f in ctx.by_kind["scanner_unavailable"]))
            matches.append(RuleMatch(SCANNER_FAILURE_RULE, SCANNER_FAILURE_CLAUSE, failure,
                                     f"scanner unavailable ({clean(failed, 120)}); the message was not fully scanned"))
            per_rcpt, action = self._combine(envelope.rcpt_tos, matches)
        tag = self._tag(matches, per_rcpt, action) if self._tags and Action.TAG in per_rcpt.values() else _NO_TAG
        return Verdict(action, tuple(matches), per_rcpt, self.version, tag)

    def _combine(self, rcpts: Sequence[str], matches: Sequence[RuleMatch]) -> tuple[dict[str, Action], Action]:
        default = self._default
        per_rcpt = dict.fromkeys(rcpts, default)
        overall = default
        for m in matches:
            if m.monitor:
                continue
            if m.action > overall:
                overall = m.action
            for r in rcpts if m.recipients is None else m.recipients:
                if m.action > per_rcpt[r]:
                    per_rcpt[r] = m.action
        if per_rcpt:
            overall = max(per_rcpt.values())
        return per_rcpt, overall

    def _tag(self, matches: Sequence[RuleMatch], per_rcpt: dict[str, Action], action: Action) -> TagSpec:
        headers: dict[str, str] = {}
        prefixes: list[str] = []
        for m in matches:
            spec = self._tags.get(m.rule_id)
            if spec is None or m.monitor:
                continue
            targets = per_rcpt if m.recipients is None else m.recipients
            if not any(per_rcpt[r] is Action.TAG for r in targets):
                continue
            for name, value in spec.headers:
                headers.setdefault(name, value)
            if spec.subject_prefix and spec.subject_prefix not in prefixes:
                prefixes.append(spec.subject_prefix)
        if not headers and not prefixes:
            return _NO_TAG
        return TagSpec(tuple(headers.items()), " ".join(prefixes))


_NO_TAG = TagSpec()
