"""Properties of the header splitter behind tagging (``relay.tagging.split_head``).

Found by the hostile tests: a header folded over many lines was rebuilt one
concatenation per line (quadratic), so a 1 MB folded header kept the event
loop busy for seconds while the forwarded copy was tagged. Each field is now
joined once; these tests pin that and the byte-exact split.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relay import tagging


def test_a_long_folded_header_is_joined_once_not_once_per_line(monkeypatch):
    made = []
    real = tagging.Field

    def counting(*args, **kw):
        made.append(args)
        return real(*args, **kw)

    monkeypatch.setattr(tagging, "Field", counting)
    raw = b"From: a@example.org\r\nX-Long: a\r\n" + b" b\r\n" * 20_000 + b"Subject: s\r\n t\r\n\r\nbody\r\n"
    head = tagging.split_head(raw)
    assert [f.name for f in head.fields] == ["From", "X-Long", "Subject"]
    assert head.join() == raw
    assert len(made) <= 2 * len(head.fields)          # one per field, plus one per folded field


lines = st.lists(st.one_of(st.sampled_from([b"X-A: v\r\n", b" cont\r\n", b"\tcont\r\n", b"Subject: s\n", b" x\r",
                                            b"bad line\r\n", b"From: a@b\r\n"]),
                           st.binary(max_size=20).map(lambda b: b.replace(b"\n", b"") + b"\r\n")), max_size=40)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines, st.binary(max_size=50))
def test_split_head_keeps_every_byte_and_each_field_starts_a_line(head_lines, body):
    raw = b"".join(head_lines) + b"\r\n" + body
    head = tagging.split_head(raw)
    assert head.join() == raw
    for field in head.fields[1:]:
        assert field.raw[:1] not in (b" ", b"\t")     # continuation lines belong to the field above
