"""Read a policy file, validate every part of it, compile it into a :class:`Policy`.

Everything is checked here, once, before the relay serves a message: unknown
keys, finding kinds and types, sender groups, regular expressions, actions,
modes, scopes and reason placeholders. Any problem raises
:class:`~relay.errors.PolicyError` naming the file, the line and what was
expected (``policies/x.yaml:42: rules[3].when.finding.kind: unknown finding
kind 'malwar'; expected one of: ...``). ``relay policy validate`` runs exactly
this code.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import re
from typing import Any

from relay.errors import PolicyError
from relay.organisation import Organisation
from relay.policy import conditions, reasons, schema
from relay.policy.engine import Policy
from relay.policy.schema import CustomDetector, Defaults, PolicySpec, Rule
from relay.policy.yamlsrc import LineList, LineMap, load
from relay.verdict import Action, TagSpec

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")
_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")
_DOMAIN = re.compile(r"(?:[a-z0-9*](?:[a-z0-9*-]{0,61}[a-z0-9*])?\.)*[a-z0-9*](?:[a-z0-9*-]{0,61}[a-z0-9*])?")
_HEADER_NAME = re.compile(r"[!-9;-~]{1,64}")
# Header fields a tag may not add: the message's own and its transport's (the tagging step drops them too).
_RESERVED_HEADERS = frozenset({
    "from", "sender", "to", "cc", "bcc", "subject", "date", "message-id", "reply-to", "in-reply-to", "references",
    "mime-version", "content-type", "content-transfer-encoding", "content-disposition", "content-id",
    "dkim-signature", "arc-seal", "arc-message-signature", "arc-authentication-results",
    "authentication-results", "received", "return-path",
})
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CLAUSE = re.compile(r"[0-9A-Za-z][0-9A-Za-z.,\- ]{0,39}")


def load_policy(path: str | os.PathLike) -> Policy:
    """Load and compile the policy file at ``path``; PolicyError on any problem."""
    name = os.fspath(path)
    try:
        with open(name, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise PolicyError(f"{name}: cannot read policy file: {exc.strerror}") from None
    return parse_policy(data, name)


def parse_policy(data: bytes | str, path: str = "<policy>") -> Policy:
    """Compile policy text (``path`` is only used in messages)."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PolicyError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    version = "sha256:" + hashlib.sha256(raw).hexdigest()[:12]
    tree = load(text, path)
    return Policy(_Builder(path).build(tree, version))


def _covered(pattern: str, earlier: tuple[str, ...]) -> bool:
    """True if every sender ``pattern`` matches is matched by a plain domain in ``earlier`` first."""
    domain = pattern.rpartition("@")[2]
    if any(c in domain for c in "*?["):
        return False
    return any(not any(c in d for c in "@*?[") and (domain == d or domain.endswith("." + d)) for d in earlier)


class _Builder:
    def __init__(self, path: str) -> None:
        self.path = path
        self.src = conditions.Source(path, PolicyError)

    def fail(self, line: int, where: str, message: str) -> PolicyError:
        return self.src.fail(line, where, message)

    # ------------------------------------------------------------ helpers

    def mapping(self, value: Any, where: str, line: int, keys: tuple[str, ...], required: tuple[str, ...] = ()) -> LineMap:
        if not isinstance(value, LineMap):
            raise self.fail(line, where, f"expected a mapping with keys: {', '.join(keys)}")
        for key in value:
            if key not in keys:
                close = difflib.get_close_matches(str(key), keys, n=2, cutoff=0.6)
                hint = f" (did you mean {', '.join(close)}?)" if close else ""
                raise self.fail(value.line_of(key), where, f"unknown key {key!r}{hint}; expected one of: {', '.join(keys)}")
        for key in required:
            if key not in value:
                raise self.fail(value.line, where, f"missing key {key!r}")
        return value

    def string(self, value: Any, where: str, line: int, allow_empty: bool = False) -> str:
        if not isinstance(value, str) or (not allow_empty and not value.strip()):
            raise self.fail(line, where, f"expected a non-empty string, got {value!r}")
        if _CONTROL.search(value):
            raise self.fail(line, where, "expected one line of text (no line breaks or other control characters)")
        return value.strip()

    def strings(self, value: Any, where: str, line: int) -> list[tuple[str, int]]:
        if not isinstance(value, LineList):
            raise self.fail(line, where, "expected a list")
        return [(self.string(v, f"{where}[{i}]", value.line_of(i)), value.line_of(i)) for i, v in enumerate(value)]

    def choice(self, value: Any, where: str, line: int, choices: tuple[str, ...]) -> str:
        if not isinstance(value, str) or value.strip().lower() not in choices:
            shown = ", ".join(c or '""' for c in choices)
            raise self.fail(line, where, f"expected one of: {shown}; got {value!r}")
        return value.strip().lower()

    def boolean(self, value: Any, where: str, line: int) -> bool:
        if not isinstance(value, bool):
            raise self.fail(line, where, f"expected true or false, got {value!r}")
        return value

    # ------------------------------------------------------------ sections

    def build(self, tree: Any, version: str) -> PolicySpec:
        top = self.mapping(tree, "policy", 1, schema.POLICY_KEYS, required=("organisation", "rules"))
        name = self.string(top["name"], "name", top.line_of("name")) if "name" in top else ""
        monitor = False
        if "mode" in top:
            monitor = self.choice(top["mode"], "mode", top.line_of("mode"), schema.MODES) == "monitor"
        org = self.organisation(top["organisation"], top.line_of("organisation"))
        defaults = self.defaults(top.get("defaults"), top.line_of("defaults"))
        detectors = self.detectors(top.get("detectors"), top.line_of("detectors"))
        known = conditions.Known(frozenset(org.groups), frozenset(f"custom:{d.name}" for d in detectors))
        rules = self.rules(top["rules"], top.line_of("rules"), known, monitor)
        return PolicySpec(name, self.path, version, org, defaults, detectors, rules, monitor)

    def organisation(self, value: Any, line: int) -> Organisation:
        where = "organisation"
        node = self.mapping(value, where, line, schema.ORGANISATION_KEYS, required=("internal_domains",))
        name = self.string(node["name"], f"{where}.name", node.line_of("name")) if "name" in node else ""
        domains = []
        for d, dline in self.strings(node["internal_domains"], f"{where}.internal_domains", node.line_of("internal_domains")):
            if not _DOMAIN.fullmatch(d.lower()) or "*" in d:
                raise self.fail(dline, f"{where}.internal_domains", f"expected a domain name such as example.ac.uk, got {d!r}")
            domains.append(d.lower())
        if not domains:
            raise self.fail(node.line_of("internal_domains"), f"{where}.internal_domains", "expected at least one domain")
        groups: dict[str, tuple[str, ...]] = {}
        if "groups" in node:
            gnode = node["groups"]
            if not isinstance(gnode, LineMap):
                raise self.fail(node.line_of("groups"), f"{where}.groups", "expected a mapping: group name -> list of patterns")
            for gname, patterns in gnode.items():
                gwhere, gline = f"{where}.groups.{gname}", gnode.line_of(gname)
                if not isinstance(gname, str) or not _NAME.fullmatch(gname) or gname == "none":
                    raise self.fail(gline, gwhere, "expected a group name of lower-case letters, digits and _ (not 'none')")
                pats = []
                for p, pline in self.strings(patterns, gwhere, gline):
                    p = p.lower()
                    if "@" not in p and not _DOMAIN.fullmatch(p):
                        raise self.fail(pline, gwhere, f"expected a domain or an address pattern such as '*@x.example.ac.uk', got {p!r}")
                    pats.append(p)
                if not pats:
                    raise self.fail(gline, gwhere, "expected at least one pattern")
                for earlier, covered in groups.items():
                    if all(_covered(p, covered) for p in pats):
                        raise self.fail(gline, gwhere, f"can never match: every pattern is covered by group {earlier!r} "
                                        "listed before it (a sender is in the first group that matches; "
                                        "list narrower groups first)")
                groups[gname] = tuple(pats)
        lists = []
        if "distribution_lists" in node:
            for a, aline in self.strings(node["distribution_lists"], f"{where}.distribution_lists",
                                         node.line_of("distribution_lists")):
                if a.count("@") != 1 or " " in a:
                    raise self.fail(aline, f"{where}.distribution_lists", f"expected an address, got {a!r}")
                lists.append(a.lower())
        return Organisation(name, tuple(domains), groups, tuple(lists))

    def defaults(self, value: Any, line: int) -> Defaults:
        if value is None:
            return Defaults()
        node = self.mapping(value, "defaults", line, schema.DEFAULTS_KEYS)
        action = Action.ACCEPT
        if "action" in node:
            action = Action.parse(self.choice(node["action"], "defaults.action", node.line_of("action"), schema.ACTIONS))
        failure = Action.TEMPFAIL
        if "scanner_failure" in node:
            failure = Action.parse(self.choice(node["scanner_failure"], "defaults.scanner_failure",
                                               node.line_of("scanner_failure"), schema.SCANNER_FAILURE_ACTIONS))
        return Defaults(action, failure)

    def detectors(self, value: Any, line: int) -> tuple[CustomDetector, ...]:
        if value is None:
            return ()
        if not isinstance(value, LineList):
            raise self.fail(line, "detectors", "expected a list of detectors")
        out: list[CustomDetector] = []
        for i, item in enumerate(value):
            where, iline = f"detectors[{i}]", value.line_of(i)
            node = self.mapping(item, where, iline, schema.DETECTOR_KEYS, required=("name", "pattern"))
            name = node["name"]
            if not isinstance(name, str) or not _NAME.fullmatch(name):
                raise self.fail(node.line_of("name"), f"{where}.name", f"expected a name of lower-case letters, digits and _, got {name!r}")
            if any(d.name == name for d in out):
                raise self.fail(node.line_of("name"), f"{where}.name", f"duplicate detector name {name!r}")
            pline = node.line_of("pattern")
            text = self.string(node["pattern"], f"{where}.pattern", pline)
            try:
                pattern = re.compile(text)
            except re.error as exc:
                raise self.fail(pline, f"{where}.pattern", f"not a valid regular expression: {exc}") from None
            if pattern.match(""):
                raise self.fail(pline, f"{where}.pattern", "the pattern matches the empty string")
            validator = ""
            if "validator" in node:
                validator = self.choice(node["validator"], f"{where}.validator", node.line_of("validator"), schema.VALIDATORS)
            keywords: tuple[str, ...] = ()
            if "keywords" in node:
                keywords = tuple(k.lower() for k, _ in self.strings(node["keywords"], f"{where}.keywords", node.line_of("keywords")))
            window = 60
            if "window" in node:
                window = node["window"]
                if isinstance(window, bool) or not isinstance(window, int) or not 1 <= window <= 10000:
                    raise self.fail(node.line_of("window"), f"{where}.window", f"expected a number of characters from 1 to 10000, got {window!r}")
            confidence = "medium"
            if "confidence" in node:
                confidence = self.choice(node["confidence"], f"{where}.confidence", node.line_of("confidence"), schema.CONFIDENCES)
            out.append(CustomDetector(name, pattern, validator, keywords, window, confidence))
        return tuple(out)

    def rules(self, value: Any, line: int, known: conditions.Known, monitor_all: bool) -> tuple[Rule, ...]:
        if not isinstance(value, LineList) or not value:
            raise self.fail(line, "rules", "expected a non-empty list of rules")
        out: list[Rule] = []
        seen: dict[str, int] = {}
        for i, item in enumerate(value):
            rule = self.rule(item, f"rules[{i}]", value.line_of(i), known, monitor_all)
            if rule.id in seen:
                raise self.fail(rule.line, f"rules[{i}].id", f"duplicate rule id {rule.id!r} (first at line {seen[rule.id]})")
            seen[rule.id] = rule.line
            out.append(rule)
        return tuple(out)

    def rule(self, item: Any, where: str, line: int, known: conditions.Known, monitor_all: bool) -> Rule:
        node = self.mapping(item, where, line, schema.RULE_KEYS, required=("id", "clause", "reason", "when", "action"))
        rid = node["id"]
        if not isinstance(rid, str) or not _ID.fullmatch(rid):
            raise self.fail(node.line_of("id"), f"{where}.id", f"expected an id of letters, digits, '.', '_', ':' or '-', got {rid!r}")
        where = f"{where} ({rid})"
        clause = node["clause"]
        if not isinstance(clause, str):
            raise self.fail(node.line_of("clause"), f"{where}.clause",
                            f"expected a quoted string such as '3.1' or '3.1.2, 3.2-3.4' (YAML reads {clause!r} as a number)")
        if not _CLAUSE.fullmatch(clause.strip()):
            raise self.fail(node.line_of("clause"), f"{where}.clause", f"expected clause numbers such as '5.2, 5.3', got {clause!r}")
        rline = node.line_of("reason")
        reason = self.string(node["reason"], f"{where}.reason", rline)
        unknown = reasons.check(reason)
        if unknown:
            raise self.fail(rline, f"{where}.reason", f"unknown placeholder {{{unknown[0]}}}; expected one of: "
                            + ", ".join("{" + p + "}" for p in schema.PLACEHOLDERS))
        try:
            reason.format_map({name: "" for name in schema.placeholders_in(reason)})
        except (ValueError, IndexError, KeyError) as exc:
            raise self.fail(rline, f"{where}.reason", f"bad braces in reason ({exc}); write {{{{ and }}}} for literal braces") from None
        action = Action.parse(self.choice(node["action"], f"{where}.action", node.line_of("action"), schema.ACTIONS))
        monitor = monitor_all
        if "mode" in node:
            monitor = monitor_all or self.choice(node["mode"], f"{where}.mode", node.line_of("mode"), schema.MODES) == "monitor"
        scope = "all"
        if "recipients" in node:
            scope = self.choice(node["recipients"], f"{where}.recipients", node.line_of("recipients"), schema.SCOPES)
        notify = False
        if "notify_sender" in node:
            notify = self.boolean(node["notify_sender"], f"{where}.notify_sender", node.line_of("notify_sender"))
        tag = TagSpec()
        if "tag" in node:
            if action is not Action.TAG:
                raise self.fail(node.line_of("tag"), f"{where}.tag", "only allowed on rules whose action is tag")
            tag = self.tag(node["tag"], f"{where}.tag", node.line_of("tag"))
        compiled = conditions.compile_condition(node["when"], f"{where}.when", node.line_of("when"), self.src, known)
        return Rule(rid, clause.strip(), reason, action, compiled.test, compiled.cite, reasons.compile_reason(reason),
                    monitor, scope, notify, tag, node.line_of("id"), compiled.kinds)

    def tag(self, value: Any, where: str, line: int) -> TagSpec:
        node = self.mapping(value, where, line, schema.TAG_KEYS)
        headers: list[tuple[str, str]] = []
        if "headers" in node:
            hnode = node["headers"]
            if not isinstance(hnode, LineMap) or not hnode:
                raise self.fail(node.line_of("headers"), f"{where}.headers", "expected a mapping: header name -> value")
            for name, val in hnode.items():
                hline = hnode.line_of(name)
                if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
                    raise self.fail(hline, f"{where}.headers", f"expected a header field name, got {name!r}")
                if name.lower() in _RESERVED_HEADERS:
                    raise self.fail(hline, f"{where}.headers", f"{name} cannot be set by a tag (it belongs to the "
                                    "message or its transport; use subject_prefix for the Subject)")
                if isinstance(val, (int, float)) and not isinstance(val, bool):
                    val = str(val)
                text = self.string(val, f"{where}.headers.{name}", hline)
                if not text.isascii():
                    raise self.fail(hline, f"{where}.headers.{name}", "expected ASCII text")
                headers.append((name, text))
        prefix = ""
        if "subject_prefix" in node:
            prefix = self.string(node["subject_prefix"], f"{where}.subject_prefix", node.line_of("subject_prefix"))
        if not headers and not prefix:
            raise self.fail(line, where, "expected headers, subject_prefix or both")
        return TagSpec(tuple(headers), prefix)
