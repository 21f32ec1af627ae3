"""What the policy engine decides about one message.

Actions are ordered by severity; when rules disagree the most severe enforced
action wins (``policies/README.md`` documents this). A verdict may differ per
recipient: ``recipient_actions`` maps each envelope recipient to its action,
and ``action`` is the most severe of them.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace


class Action(enum.IntEnum):
    ACCEPT = 0
    TAG = 1
    HOLD = 2
    TEMPFAIL = 3
    REJECT = 4

    def __str__(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Action:
        return cls[text.strip().upper()]


@dataclass(frozen=True, slots=True)
class RuleMatch:
    rule_id: str
    clause: str
    action: Action
    reason: str                                   # placeholders already filled, never personal data
    monitor: bool = False                         # evaluated and logged, not enforced
    recipients: tuple[str, ...] | None = None     # None: every recipient
    notify_sender: bool = False

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "id": self.rule_id, "clause": self.clause, "action": str(self.action), "reason": self.reason,
        }
        if self.monitor:
            out["monitor"] = True
        if self.recipients is not None:
            out["recipients"] = list(self.recipients)
        return out


@dataclass(frozen=True, slots=True)
class TagSpec:
    headers: tuple[tuple[str, str], ...] = ()   # extra headers a tag rule asks for
    subject_prefix: str = ""


@dataclass(frozen=True, slots=True)
class Verdict:
    action: Action
    matches: tuple[RuleMatch, ...]                # every matching rule, enforced and monitored
    recipient_actions: Mapping[str, Action] = field(default_factory=dict)
    policy_version: str = ""
    tag: TagSpec = TagSpec()

    @property
    def enforced(self) -> tuple[RuleMatch, ...]:
        return tuple(m for m in self.matches if not m.monitor)

    @property
    def deciding(self) -> RuleMatch | None:
        """The first enforced rule with the verdict's action (the one a reply cites)."""
        for m in self.matches:
            if not m.monitor and m.action == self.action:
                return m
        return None

    def recipients_with(self, *actions: Action) -> tuple[str, ...]:
        return tuple(r for r, a in self.recipient_actions.items() if a in actions)

    def route(self, rcpt_tos: Sequence[str]) -> Routing:
        """What this verdict does with each of ``rcpt_tos`` (both fronts act on this)."""
        actions = {r: self.recipient_actions.get(r, self.action) for r in rcpt_tos}
        return Routing(max(actions.values(), default=self.action),
                       tuple(r for r in rcpt_tos if actions[r] <= Action.TAG),
                       tuple(r for r in rcpt_tos if actions[r] == Action.HOLD), actions)


@dataclass(frozen=True, slots=True)
class Routing:
    """One message's recipients by what the verdict does with them."""
    worst: Action                       # REJECT or TEMPFAIL here refuses the whole message
    forward: tuple[str, ...]            # accepted or tagged: sent on
    hold: tuple[str, ...]               # held for review
    actions: Mapping[str, Action]

    @property
    def split(self) -> dict[str, list[str]] | None:
        """For the decision log, when some recipients are held and others forwarded."""
        return {"forwarded": list(self.forward), "held": list(self.hold)} if self.hold and self.forward else None

    def for_forwarded(self, verdict: Verdict) -> Verdict:
        """``verdict`` as the forwarded copy should tell it: what happened to *its* recipients."""
        if not self.hold:
            return verdict
        return replace(verdict, action=max(self.actions[r] for r in self.forward),
                       recipient_actions={r: self.actions[r] for r in self.forward})
