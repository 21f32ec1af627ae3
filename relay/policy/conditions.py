"""Conditions compiled once, at load, into closures over an :class:`EvalContext`.

A condition is a mapping with exactly one test key (``all``, ``any``, ``not``,
``finding`` or a fact such as ``external_recipients``); ``all``/``any`` take a
list of conditions, ``not`` one. :func:`compile_condition` validates the tree
(naming file and line on any error) and returns a :class:`Compiled`: ``test``
answers the condition, ``cite`` returns the findings the condition's positive
finding tests matched (what the rule's reason talks about).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from relay import findings as findings_mod
from relay.findings import Confidence, Finding
from relay.policy import schema
from relay.policy.facts import EvalContext
from relay.policy.yamlsrc import LineList, LineMap

Test = Callable[[EvalContext], bool]
Pred = Callable[[Finding], bool]


class Source:
    """Where a value came from, for error messages: ``file:line: path: message``."""

    __slots__ = ("file", "fail_cls")

    def __init__(self, file: str, fail_cls: type[Exception]) -> None:
        self.file = file
        self.fail_cls = fail_cls

    def fail(self, line: int, path: str, message: str) -> Exception:
        return self.fail_cls(f"{self.file}:{line}: {path}: {message}")


@dataclass(frozen=True, slots=True)
class Compiled:
    test: Test
    finding_tests: tuple[tuple[tuple[str, ...], Pred | None], ...]  # positive ones only, kinds in file order
    kinds: frozenset[str] = frozenset()  # every finding kind the condition looks at (under `not` too)

    def cite(self, ctx: EvalContext) -> tuple[Finding, ...]:
        out: list[Finding] = []
        seen: set[int] = set()
        for kinds, pred in self.finding_tests:
            for kind in kinds:
                for f in ctx.by_kind.get(kind, ()):
                    if id(f) not in seen and (pred is None or pred(f)):
                        seen.add(id(f))
                        out.append(f)
        return tuple(out)


@dataclass(frozen=True, slots=True)
class Known:
    """What a condition may name: declared groups and custom detector types."""

    groups: frozenset[str]
    custom_types: frozenset[str]


def compile_condition(node: Any, path: str, line: int, src: Source, known: Known) -> Compiled:
    return _Compiler(src, known).compile(node, path, line, positive=True)


_SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1000, "kib": 1024, "m": 1024**2, "mb": 1000**2, "mib": 1024**2}


def _fmt_choices(choices: Iterable[str]) -> str:
    return ", ".join(c for c in choices if c)


class _Compiler:
    def __init__(self, src: Source, known: Known) -> None:
        self.src = src
        self.known = known
        self.finding_tests: list[tuple[tuple[str, ...], Pred | None]] = []
        self.kinds: set[str] = set()

    def compile(self, node: Any, path: str, line: int, positive: bool) -> Compiled:
        test = self._node(node, path, line, positive)
        return Compiled(test, tuple(self.finding_tests), frozenset(self.kinds))

    # ------------------------------------------------------------ structure

    def _node(self, node: Any, path: str, line: int, positive: bool) -> Test:
        if not isinstance(node, LineMap) or len(node) != 1:
            raise self.src.fail(getattr(node, "line", line), path,
                                "expected a mapping with exactly one test, one of: " + ", ".join(schema.CONDITION_TESTS))
        (key, value), = node.items()
        kline = node.line_of(key)
        sub = f"{path}.{key}"
        if key not in schema.CONDITION_TESTS:
            raise self.src.fail(kline, path, f"unknown condition test {key!r}; expected one of: "
                                + ", ".join(schema.CONDITION_TESTS))
        if key in ("all", "any"):
            if not isinstance(value, LineList) or not value:
                raise self.src.fail(kline, sub, "expected a non-empty list of conditions")
            tests = tuple(self._node(v, f"{sub}[{i}]", value.line_of(i), positive) for i, v in enumerate(value))
            return _all(tests) if key == "all" else _any(tests)
        if key == "not":
            inner = self._node(value, sub, kline, not positive)
            return lambda ctx: not inner(ctx)
        if key == "finding":
            return self._finding(value, sub, kline, positive)
        return self._fact(key, value, sub, kline)

    # ------------------------------------------------------------ findings

    def _finding(self, spec: Any, path: str, line: int, positive: bool) -> Test:
        if not isinstance(spec, LineMap):
            raise self.src.fail(line, path, "expected a mapping of finding tests: " + ", ".join(schema.FINDING_TESTS))
        for key in spec:
            if key not in schema.FINDING_TESTS:
                raise self.src.fail(spec.line_of(key), path, f"unknown finding test {key!r}; expected one of: "
                                    + ", ".join(schema.FINDING_TESTS))
        if "kind" not in spec:
            raise self.src.fail(spec.line, path, "a finding test needs kind")
        kinds = self._words(spec["kind"], f"{path}.kind", spec.line_of("kind"))
        for kind in kinds:
            if kind not in findings_mod.KINDS:
                raise self.src.fail(spec.line_of("kind"), f"{path}.kind", f"unknown finding kind {kind!r}; expected one of: "
                                    + ", ".join(findings_mod.KINDS))
        checks: list[Pred] = []
        if "type" in spec:
            types = frozenset(self._words(spec["type"], f"{path}.type", spec.line_of("type")))
            self._check_types(kinds, types, f"{path}.type", spec.line_of("type"))
            checks.append(lambda f: f.type.lower() in types)  # signature names come in any case
        if "confidence" in spec:
            value = spec["confidence"]
            if value not in schema.CONFIDENCES:
                raise self.src.fail(spec.line_of("confidence"), f"{path}.confidence",
                                    f"expected one of: {_fmt_choices(schema.CONFIDENCES)}, got {value!r}")
            least = Confidence[value.upper()]
            checks.append(lambda f: f.confidence >= least)
        if "where" in spec:
            checks.append(self._where(spec["where"], f"{path}.where", spec.line_of("where")))
        if "protected" in spec:
            wanted = self._bool(spec["protected"], f"{path}.protected", spec.line_of("protected"))
            checks.append(lambda f: f.protected is wanted)
        need = 1
        if "count" in spec:
            need = self._int(spec["count"], f"{path}.count", spec.line_of("count"))
        pred = _and_preds(checks)
        kind_set = frozenset(kinds)
        ordered = tuple(dict.fromkeys(kinds))  # file order: reasons list kinds in a stable order
        self.kinds.update(ordered)
        if positive:
            self.finding_tests.append((ordered, pred))

        if pred is None and need == 1:
            if len(ordered) == 1:
                only = ordered[0]
                return lambda ctx: only in ctx.by_kind
            return lambda ctx: not kind_set.isdisjoint(ctx.by_kind)

        def test(ctx: EvalContext) -> bool:
            total = 0
            by_kind = ctx.by_kind
            for kind in ordered:
                for f in by_kind.get(kind, ()):
                    if pred is None or pred(f):
                        total += f.count
                        if total >= need:
                            return True
            return False

        return test

    def _check_types(self, kinds: list[str], types: frozenset[str], path: str, line: int) -> None:
        for t in types:
            ok = False
            for kind in kinds:
                closed = findings_mod.TYPES.get(kind)
                if closed is None or t in closed or (kind == "personal_data" and t in self.known.custom_types):
                    ok = True
            if not ok:
                allowed = sorted({x for k in kinds for x in findings_mod.TYPES.get(k, ())})
                if "personal_data" in kinds:
                    allowed += sorted(self.known.custom_types)
                raise self.src.fail(line, path, f"unknown type {t!r} for kind {', '.join(kinds)}; expected one of: "
                                    + ", ".join(allowed))

    def _where(self, value: Any, path: str, line: int) -> Pred:
        preds: list[Pred] = []
        for item in self._words(value, path, line, lower=False):
            if item == "body":
                preds.append(lambda f: f.where == "body")
            elif item == "message":
                preds.append(lambda f: f.where == "message")
            elif item == "header":
                preds.append(lambda f: f.where.startswith("header"))
            elif item == "attachment":
                preds.append(lambda f: f.where.startswith("part "))
            else:
                rx = re.compile(fnmatch.translate(item))
                preds.append(lambda f, rx=rx: rx.match(f.where) is not None)
        if len(preds) == 1:
            return preds[0]
        return lambda f: any(p(f) for p in preds)

    # ------------------------------------------------------------ facts

    def _fact(self, key: str, value: Any, path: str, line: int) -> Test:
        if key == "sender_group":
            groups = frozenset(self._words(value, path, line))
            for g in groups:
                if g != "none" and g not in self.known.groups:
                    raise self.src.fail(line, path, f"unknown sender group {g!r}; expected one of: "
                                        + ", ".join(sorted(self.known.groups | {"none"})))
            return lambda ctx: ctx.sender_group in groups
        if key == "sender":
            patterns = tuple(re.compile(fnmatch.translate(p)) for p in self._words(value, path, line))
            return lambda ctx: any(p.match(ctx.sender) for p in patterns)
        if key == "external_recipients":
            if isinstance(value, bool):
                return (lambda ctx: bool(ctx.external)) if value else (lambda ctx: not ctx.external)
            need = self._int(value, path, line, "true, false or a number of at least 1")
            return lambda ctx: len(ctx.external) >= need
        if key == "internal_only":
            want = self._bool(value, path, line)
            return lambda ctx: (bool(ctx.envelope.rcpt_tos) and not ctx.external) is want
        if key == "distribution_list":
            want = self._bool(value, path, line)
            return lambda ctx: bool(ctx.lists) is want
        if key == "visible_recipients":
            need = self._int(value, path, line)
            return lambda ctx: ctx.visible_at_least(need)
        if key == "recipients":
            need = self._int(value, path, line)
            return lambda ctx: len(ctx.envelope.rcpt_tos) >= need
        if key == "message_size":
            need = self._size(value, path, line)
            return lambda ctx: ctx.message.size >= need
        if key == "encrypted":
            self.kinds.add("encrypted_message")
            want = self._bool(value, path, line)
            return lambda ctx: ctx.encrypted is want
        self.kinds.add("signed_message")
        want = self._bool(value, path, line)  # signed
        return lambda ctx: ctx.signed is want

    # ------------------------------------------------------------ values

    def _words(self, value: Any, path: str, line: int, lower: bool = True) -> list[str]:
        items = value if isinstance(value, LineList) else [value]
        out = []
        for item in items:
            if not isinstance(item, str) or not item.strip():
                raise self.src.fail(line, path, f"expected a word or a list of words, got {item!r}")
            out.append(item.strip().lower() if lower else item.strip())
        if not out:
            raise self.src.fail(line, path, "expected at least one value")
        return out

    def _bool(self, value: Any, path: str, line: int) -> bool:
        if not isinstance(value, bool):
            raise self.src.fail(line, path, f"expected true or false, got {value!r}")
        return value

    def _int(self, value: Any, path: str, line: int, expected: str = "a whole number of at least 1") -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise self.src.fail(line, path, f"expected {expected}, got {value!r}")
        return value

    def _size(self, value: Any, path: str, line: int) -> int:
        if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
            return value
        if isinstance(value, str):
            m = re.fullmatch(r"\s*(\d+)\s*([a-zA-Z]*)\s*", value)
            if m and m.group(2).lower() in _SIZE_UNITS and int(m.group(1)) >= 1:
                return int(m.group(1)) * _SIZE_UNITS[m.group(2).lower()]
        raise self.src.fail(line, path, f"expected a size such as 1048576, '512KiB' or '10MiB', got {value!r}")


def _and_preds(checks: list[Pred]) -> Pred | None:
    if not checks:
        return None
    if len(checks) == 1:
        return checks[0]
    if len(checks) == 2:
        a, b = checks
        return lambda f: a(f) and b(f)
    frozen = tuple(checks)
    return lambda f: all(c(f) for c in frozen)


def _all(tests: tuple[Test, ...]) -> Test:
    if len(tests) == 1:
        return tests[0]
    if len(tests) == 2:
        a, b = tests
        return lambda ctx: a(ctx) and b(ctx)
    return lambda ctx: all(t(ctx) for t in tests)


def _any(tests: tuple[Test, ...]) -> Test:
    if len(tests) == 1:
        return tests[0]
    if len(tests) == 2:
        a, b = tests
        return lambda ctx: a(ctx) or b(ctx)
    return lambda ctx: any(t(ctx) for t in tests)
