"""The loader: every mistake in a policy file is a PolicyError naming file, line and expectation."""

from __future__ import annotations

import re
import textwrap

import pytest
from policy_helpers import ORG, policy_from

from relay.errors import PolicyError
from relay.policy import load_policy, parse_policy
from relay.verdict import Action, TagSpec

GOOD_RULE = """\
- id: malware
  clause: "5.1"
  reason: "virus {signature}"
  when: {finding: {kind: malware}}
  action: reject
"""


def text_with(rules: str = GOOD_RULE, head: str = ORG) -> str:
    return head + "rules:\n" + textwrap.indent(textwrap.dedent(rules), "  ")


def test_good_policy_loads_with_version_and_organisation():
    text = text_with()
    policy = parse_policy(text, "p.yaml")
    import hashlib

    assert policy.version == "sha256:" + hashlib.sha256(text.encode()).hexdigest()[:12]
    assert re.fullmatch(r"sha256:[0-9a-f]{12}", policy.version)
    assert policy.organisation.internal_domains == ("example.ac.uk",)
    assert list(policy.organisation.groups) == ["students", "contractors", "staff"]
    assert policy.organisation.distribution_lists == ("all-staff@example.ac.uk",)
    assert policy.custom_detectors == ()
    [rule] = policy.rules
    assert (rule.id, rule.clause, rule.action, rule.monitor, rule.scope) == ("malware", "5.1", Action.REJECT, False, "all")


def test_version_changes_with_any_byte():
    assert parse_policy(text_with()).version != parse_policy(text_with() + "# comment\n").version


def test_load_policy_reads_file(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(text_with())
    assert load_policy(path).spec.path == str(path)


def test_missing_file_is_a_policy_error(tmp_path):
    with pytest.raises(PolicyError, match=r"missing.yaml: cannot read policy file"):
        load_policy(tmp_path / "missing.yaml")


def test_non_utf8_is_a_policy_error():
    with pytest.raises(PolicyError, match=r"p.yaml: not UTF-8 text"):
        parse_policy(b"name: \xff\n", "p.yaml")


DETECTOR_HEAD = ORG + """\
detectors:
  - name: student_number
    pattern: '\\bS\\d{7}\\b'
    validator: luhn
    keywords: [Student, "student id"]
    window: 40
    confidence: high
"""


def test_custom_detectors_are_compiled_and_usable_as_types():
    policy = policy_from("""
        - id: students
          clause: "5.2"
          reason: "student numbers ({count})"
          when: {finding: {kind: personal_data, type: "custom:student_number"}}
          action: hold
        """, head=DETECTOR_HEAD)
    [d] = policy.custom_detectors
    assert d.name == "student_number"
    assert d.pattern.search("id S1234567 here")
    assert (d.validator, d.keywords, d.window, d.confidence) == ("luhn", ("student", "student id"), 40, "high")


def test_detector_defaults():
    head = ORG + "detectors:\n  - {name: staff_no, pattern: 'E\\d{6}'}\n"
    [d] = policy_from(GOOD_RULE, head=head).custom_detectors
    assert (d.validator, d.keywords, d.window, d.confidence) == ("", (), 60, "medium")


def test_tag_spec_and_options():
    policy = policy_from("""
        - id: t
          clause: "5.4"
          reason: "desktop"
          when: {finding: {kind: desktop_client}}
          action: tag
          mode: monitor
          recipients: external
          notify_sender: true
          tag: {headers: {X-Client: desktop, X-Num: 5}, subject_prefix: "[DESKTOP]"}
        """)
    [rule] = policy.rules
    assert rule.monitor and rule.scope == "external" and rule.notify_sender
    assert rule.tag == TagSpec((("X-Client", "desktop"), ("X-Num", "5")), "[DESKTOP]")


def test_policy_wide_monitor_mode_monitors_every_rule():
    policy = parse_policy("mode: monitor\n" + text_with())
    assert policy.monitor and all(r.monitor for r in policy.rules)


# (policy text, line, fragment of the message)
BAD = [
    ("nmae: x\n" + text_with(), 1, r"policy: unknown key 'nmae' \(did you mean name\?\); expected one of: name, mode"),
    ("rules: []\n", 1, r"missing key 'organisation'"),
    (ORG + "rules: []\n", 9, r"rules: expected a non-empty list of rules"),
    ("mode: audit\n" + text_with(), 1, r"mode: expected one of: enforce, monitor; got 'audit'"),
    (ORG.replace("[example.ac.uk]", "[]") + "rules:\n  - x\n", 3, r"internal_domains: expected at least one domain"),
    (ORG.replace("[example.ac.uk]", "['not a domain']") + "rules:\n  - x\n", 3, r"expected a domain name"),
    (ORG.replace("    staff:", "    none:") + "rules: []\n", 7, r"groups.none: expected a group name"),
    (ORG.replace("    students: [students.example.ac.uk]\n", "").replace("    staff: [example.ac.uk]\n",
     "    staff: [example.ac.uk]\n    students: [students.example.ac.uk]\n") + "rules:\n  - x\n", 7,
     r"groups.students: can never match: every pattern is covered by group 'staff' listed before it"),
    (ORG.replace('"contractor.*@example.ac.uk"', "'c@students.example.ac.uk', '*@x.students.example.ac.uk'")
     + "rules:\n  - x\n", 6, r"groups.contractors: can never match: every pattern is covered by group 'students'"),
    (ORG.replace("[all-staff@example.ac.uk]", "[all-staff]") + "rules:\n  - x\n", 8, r"distribution_lists: expected an address"),
    (ORG + "defaults: {action: allow}\n" + "rules:\n  - x\n", 9, r"defaults.action: expected one of: accept, tag, hold, tempfail, reject"),
    (ORG + "defaults: {scanner_failure: accept}\n" + "rules:\n  - x\n", 9, r"defaults.scanner_failure: expected one of: tempfail, hold, reject"),
    (ORG + "defaults: {actoin: accept}\n" + "rules:\n  - x\n", 9, r"defaults: unknown key 'actoin' \(did you mean action\?\)"),
    (ORG + "detectors:\n  - {name: x, pattern: '([a-z'}\n" + "rules:\n  - x\n", 10, r"detectors\[0\].pattern: not a valid regular expression: unterminated character set"),
    (ORG + "detectors:\n  - {name: x, pattern: 'a*'}\n" + "rules:\n  - x\n", 10, r"matches the empty string"),
    (ORG + "detectors:\n  - {name: X, pattern: 'a'}\n" + "rules:\n  - x\n", 10, r"detectors\[0\].name: expected a name"),
    (ORG + "detectors:\n  - {name: x, pattern: 'a', validator: crc}\n" + "rules:\n  - x\n", 10, r"validator: expected one of: \"\", luhn, mod11, mod97"),
    (ORG + "detectors:\n  - {name: x, pattern: 'a', window: 0}\n" + "rules:\n  - x\n", 10, r"window: expected a number of characters"),
    (ORG + "detectors:\n  - {name: x, pattern: 'a'}\n  - {name: x, pattern: 'b'}\n" + "rules:\n  - x\n", 11, r"duplicate detector name 'x'"),
    (ORG + "detectors:\n  - {name: x, pattern: 'a', colour: red}\n" + "rules:\n  - x\n", 10, r"unknown key 'colour'"),
    (text_with(GOOD_RULE.replace("kind: malware", "kind: malwar")), 13, r"rules\[0\] \(malware\).when.finding.kind: unknown finding kind 'malwar'; expected one of: scanner_unavailable"),
    (text_with(GOOD_RULE.replace("{kind: malware}", "{kind: personal_data, type: ssn}")), 13, r"unknown type 'ssn' for kind personal_data; expected one of: .*uk_nino"),
    (text_with(GOOD_RULE.replace("{kind: malware}", "{kind: personal_data, type: 'custom:nope'}")), 13, r"unknown type 'custom:nope'"),
    (text_with(GOOD_RULE.replace("{kind: malware}", "{kind: executable, type: [pe, zip]}")), 13, r"unknown type 'zip' for kind executable"),
    (text_with(GOOD_RULE.replace("{kind: malware}", "{kind: malware, confidence: certain}")), 13, r"confidence: expected one of: low, medium, high, got 'certain'"),
    (text_with(GOOD_RULE.replace("{kind: malware}", "{kind: malware, count: 0}")), 13, r"count: expected a whole number of at least 1, got 0"),
    (text_with(GOOD_RULE.replace("{kind: malware}", "{kind: malware, protected: maybe}")), 13, r"protected: expected true or false"),
    (text_with(GOOD_RULE.replace("{kind: malware}", "{kind: malware, colour: red}")), 13, r"unknown finding test 'colour'"),
    (text_with(GOOD_RULE.replace("{kind: malware}", "{type: pe}")), 13, r"a finding test needs kind"),
    (text_with(GOOD_RULE.replace("{finding: {kind: malware}}", "{sender_group: teachers}")), 13, r"unknown sender group 'teachers'; expected one of: contractors, none, staff, students"),
    (text_with(GOOD_RULE.replace("{finding: {kind: malware}}", "{external_recipients: 0}")), 13, r"external_recipients: expected true, false or a number of at least 1, got 0"),
    (text_with(GOOD_RULE.replace("{finding: {kind: malware}}", "{message_size: huge}")), 13, r"message_size: expected a size"),
    (text_with(GOOD_RULE.replace("{finding: {kind: malware}}", "{encrypted: yes please}")), 13, r"encrypted: expected true or false"),
    (text_with(GOOD_RULE.replace("{finding: {kind: malware}}", "{any: []}")), 13, r"when.any: expected a non-empty list of conditions"),
    (text_with(GOOD_RULE.replace("{finding: {kind: malware}}", "{encrypted: true, signed: true}")), 13, r"expected a mapping with exactly one test"),
    (text_with(GOOD_RULE.replace("{finding: {kind: malware}}", "{either: []}")), 13, r"unknown condition test 'either'"),
    (text_with(GOOD_RULE.replace("{finding: {kind: malware}}", "{not: [{encrypted: true}]}")), 13, r"when.not: expected a mapping with exactly one test"),
    (text_with(GOOD_RULE.replace("virus {signature}", "virus {signatures}")), 12, r"reason: unknown placeholder \{signatures\}; expected one of: \{rule\}"),
    (text_with(GOOD_RULE.replace("virus {signature}", "virus {evidence}")), 12, r"unknown placeholder \{evidence\}"),
    (text_with(GOOD_RULE.replace("virus {signature}", "virus {count:>5}")), 12, r"unknown placeholder \{count:>5\}"),
    (text_with(GOOD_RULE.replace("virus {signature}", "virus {")), 12, r"bad braces in reason"),
    (text_with(GOOD_RULE.replace("action: reject", "action: drop")), 14, r"action: expected one of: accept, tag, hold, tempfail, reject; got 'drop'"),
    (text_with(GOOD_RULE.replace('clause: "5.1"', "clause: 5.1")), 11, r"clause: expected a quoted string"),
    (text_with(GOOD_RULE.replace("id: malware", "id: 'bad id'")), 10, r"rules\[0\].id: expected an id"),
    (text_with(GOOD_RULE + GOOD_RULE), 15, r"duplicate rule id 'malware' \(first at line 10\)"),
    (text_with(GOOD_RULE + "  colour: red\n"), 15, r"unknown key 'colour'"),
    (text_with(GOOD_RULE.replace("  action: reject\n", "")), 10, r"missing key 'action'"),
    (text_with(GOOD_RULE + "  mode: audit\n"), 15, r"mode: expected one of: enforce, monitor"),
    (text_with(GOOD_RULE + "  recipients: some\n"), 15, r"recipients: expected one of: all, external, internal, distribution_lists"),
    (text_with(GOOD_RULE + "  notify_sender: sometimes\n"), 15, r"notify_sender: expected true or false"),
    (text_with(GOOD_RULE + "  tag: {subject_prefix: x}\n"), 15, r"tag: only allowed on rules whose action is tag"),
    (text_with(GOOD_RULE.replace("reject", "tag") + "  tag: {headers: {'Bad Name': x}}\n"), 15, r"expected a header field name"),
    (text_with(GOOD_RULE.replace("reject", "tag") + "  tag: {headers: {subject: x}}\n"), 15,
     r"subject cannot be set by a tag .*use subject_prefix"),
    (text_with(GOOD_RULE.replace("reject", "tag") + "  tag: {}\n"), 15, r"expected headers, subject_prefix or both"),
    (text_with(GOOD_RULE.replace("virus {signature}", "two\\nlines")), 12, r"expected one line of text"),
    (text_with(GOOD_RULE.replace("virus {signature}", "bell\\a")), 12, r"no line breaks or other control characters"),
    (text_with(GOOD_RULE) + "rules: []\n", 15, r"duplicate key 'rules' \(first at line 9\)"),
    ("organisation: [\n", 1, r"not valid YAML: .*'<stream end>'"),   # the end of the file: the last line with text
    (text_with(GOOD_RULE.replace("{finding: {kind: malware}}", "{finding: {kind: malware}")), 14,
     r"not valid YAML: expected ',' or '}'.* \(line 14, column 5\), while parsing a flow mapping that starts at line 13"),
]


@pytest.mark.parametrize(("text", "line", "message"), BAD, ids=[m for _, _, m in BAD])
def test_bad_policy_names_file_line_and_expectation(text, line, message):
    with pytest.raises(PolicyError) as info:
        parse_policy(text, "bad.yaml")
    text_of_error = str(info.value)
    assert text_of_error.startswith(f"bad.yaml:{line}: "), text_of_error
    assert re.search(message, text_of_error), text_of_error


def test_shipped_policies_load():
    for path in ("policies/icmp-email-use.yaml", "policies/minimal.yaml"):
        policy = load_policy(path)
        assert policy.rules and policy.version.startswith("sha256:")
