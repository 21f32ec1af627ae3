"""Properties of the MIME walker (``relay.message.parse``), checked by hypothesis.

Over arbitrary bytes and over real messages mutated at random (bytes flipped,
spans deleted, duplicated or moved, boundary and header lines inserted):
``parse`` never raises, and every bound holds under small limits -- parts
counted (MIME parts and archive members) <= ``max_parts``, MIME nesting <=
``max_depth``, archive nesting <= ``max_archive_depth``, bytes decoded <=
``max_decoded_bytes``. Going over a bound is reported as a ``limit_exceeded``
finding. Example counts are bounded so the file runs in seconds.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relay.message import ParseLimits, parse

CASES = Path(__file__).resolve().parents[1] / "data" / "policy-cases"
CORPUS = [p.read_bytes() for p in sorted(CASES.glob("*.eml"))]
LIMITS = ParseLimits(max_depth=4, max_parts=12, max_decoded_bytes=4000, max_archive_members=5,
                     max_archive_depth=2, max_compression_ratio=50)
FAST = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])

INSERTS = [b"\r\n--", b"\r\n\r\n", b"Content-Type: multipart/mixed; boundary=b\r\n", b"--b\r\n", b"--b--\r\n",
           b"Content-Type: message/rfc822\r\n", b"Content-Transfer-Encoding: base64\r\n", b"=?utf-8?b?AAAA?=",
           b"\x00", b"\xff\xfe", b"\r", b"\n", b"Content-Type: application/zip; name=a.zip\r\n",
           b"filename*=utf-8''%ff%fe", b"=\r\n", b"begin 644 x\r\n"]


def _zip(members: int, depth: int) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for n in range(members):
            zf.writestr(f"m{n}.zip" if depth else f"m{n}.txt", _zip(members, depth - 1) if depth else b"a" * 3000)
    return buf.getvalue()


def _nested(depth: int, fanout: int) -> bytes:
    """Messages inside multiparts inside messages..., ``depth`` levels, ``fanout`` parts each."""
    inner = b"Content-Type: text/plain\r\n\r\nleaf\r\n"
    for level in range(depth):
        b = f"b{level}".encode()
        inner = (b"Content-Type: multipart/mixed; boundary=" + b + b"\r\n\r\n"
                 + b"".join(b"--" + b + b"\r\nContent-Type: message/rfc822\r\n\r\n" + inner + b"\r\n"
                            for _ in range(fanout)) + b"--" + b + b"--\r\n")
    return b"From: a@example.org\r\n" + inner


SEEDS = CORPUS + [_nested(6, 2), _nested(3, 4),
                  b"From: a@example.org\r\nContent-Type: application/zip; name=z.zip\r\n"
                  b"Content-Transfer-Encoding: base64\r\n\r\n" + __import__("base64").encodebytes(_zip(3, 3))]


def check_bounds(raw: bytes, limits: ParseLimits = LIMITS) -> None:
    msg = parse(raw, limits)
    parts = list(msg.walk())
    counted = sum(1 for p in parts)
    assert counted <= limits.max_parts, (counted, limits.max_parts)
    assert max(p.index.split("/")[0].count(".") for p in parts) <= limits.max_depth
    assert max(p.index.count("/") for p in parts) <= limits.max_archive_depth
    decoded = sum(len(p.payload) for p in parts if p.origin == "mime")
    assert decoded <= limits.max_decoded_bytes
    for p in parts:                                   # the tree is well formed and readable
        assert isinstance(p.content_type, str) and isinstance(p.filename, str)
        assert "\x00" not in p.filename
        p.text()
    for f in msg.problems:
        assert f.kind in ("malformed", "limit_exceeded") and f.count >= 1


@st.composite
def mutated(draw) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 8))):
        op = draw(st.sampled_from(["flip", "delete", "duplicate", "insert", "truncate"]))
        if not data:
            data += b"x"
        at = draw(st.integers(0, len(data) - 1))
        if op == "flip":
            data[at] = draw(st.integers(0, 255))
        elif op == "delete":
            del data[at:at + draw(st.integers(1, 200))]
        elif op == "duplicate":
            span = bytes(data[at:at + draw(st.integers(1, 2000))])
            data[at:at] = span * draw(st.integers(1, 6))
        elif op == "insert":
            data[at:at] = draw(st.sampled_from(INSERTS))
        else:
            del data[at:]
    return bytes(data)


@FAST
@given(st.binary(max_size=3000))
def test_arbitrary_bytes_parse_within_bounds(data):
    check_bounds(data)


@FAST
@given(mutated())
def test_mutated_real_messages_parse_within_bounds(raw):
    check_bounds(raw)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 12), st.integers(1, 4), st.integers(1, 6))
def test_nesting_and_fan_out_are_cut_and_reported(depth, fanout, max_depth):
    limits = ParseLimits(max_depth=max_depth, max_parts=20, max_decoded_bytes=10_000)
    raw = _nested(depth, fanout)
    check_bounds(raw, limits)
    msg = parse(raw, limits)
    total = 1                                   # entities without bounds: a leaf, then per level
    for _ in range(depth):                      # one multipart + fanout x (message/rfc822 + what it holds)
        total = 1 + fanout * (1 + total)
    if total > limits.max_parts or 2 * depth > max_depth:
        assert {f.kind for f in msg.problems} == {"limit_exceeded"}, msg.problems


def test_the_seeds_themselves_parse_within_bounds():
    """The mutation seeds (corpus, deep nesting, a nested zip bomb) are within the bounds unmutated too."""
    for raw in SEEDS:
        check_bounds(raw)
    bomb = parse(SEEDS[-1], LIMITS)
    assert ("limit_exceeded", "max_archive_members") in {(f.kind, f.type) for f in bomb.problems} or \
           ("limit_exceeded", "max_parts") in {(f.kind, f.type) for f in bomb.problems}


def test_hostile_charset_names_decode_with_replacement_never_raise():
    """Found by fuzz/fuzz_message.py: a NUL or a non-UTF-8 byte in a charset name made codecs.lookup
    raise ValueError, so text extraction failed and the shipped policy tempfailed the message forever."""
    from relay.extract import plain

    for charset in (b'"utf-8\x00x"', b"utf\xff8", b"\x00"):
        raw = (b"From: a@example.org\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=" + charset
               + b"\r\n\r\nHello Carol.\r\n")
        part = parse(raw).root
        assert "Hello Carol." in part.text()
        assert "Hello Carol." in plain.decode(part.payload, part.charset)


def test_nul_bytes_in_text_are_malformed_but_utf16_text_is_not():
    """NULs interleaved in text hide it from the scanners ("9\\x0043 476 5919" is no NHS number to a regex)
    while a mail reader drops them: found by the hostile tests, the shipped policy now holds such mail."""
    head = b"From: a@example.org\r\nMIME-Version: 1.0\r\nContent-Type: text/plain%s\r\n"
    def types(raw: bytes) -> set[str]:
        return {f.type for f in parse(raw).problems}
    assert "nul_in_text" in types(head % b"" + b"\r\nNHS number 9\x0043 476 5919\r\n")
    assert "nul_in_text" in types(head % b"; charset=utf-8" + b"Content-Transfer-Encoding: base64\r\n\r\nOQA0MyA0NzYgNTkxOQ==\r\n")
    utf16 = "NHS number 943 476 5919\r\n".encode("utf-16-le")
    assert "nul_in_text" not in types(head % b"; charset=utf-16le" + b"\r\n" + utf16)
    assert "nul_in_text" not in types(head % b"" + b"\r\n" + b"\xff\xfe" + utf16)
    assert "nul_in_text" not in types(head % b"" + b"\r\n" + utf16)                      # BOM-less, all of it
    assert "nul_in_text" in types(head % b"" + b"\r\n" + utf16 + b"then 9\x0043 476 5919 in ASCII" * 20)
    assert types(head % b"" + b"\r\nno NUL here\r\n") == set()


def test_long_encoded_word_headers_are_decoded_in_bounded_pieces(monkeypatch):
    """Found by the hostile tests: the stdlib's RFC 2047 decoder is quadratic in the number of words, and
    a 2 MB Subject of encoded words took minutes to parse. Long values are now decoded in pieces."""
    import email.header

    from relay import message

    seen = []
    real = email.header.decode_header
    monkeypatch.setattr(email.header, "decode_header", lambda v: seen.append(len(v)) or real(v))
    value = "=?utf-8?q?caf=C3=A9?= " * 40_000 + "end"
    text = message.decode_words(value)
    assert text.count("café") == 40_000 and text.endswith("end") and "=?" not in text
    assert max(seen) <= 2 * message._WORDS_PIECE
    short = "Re: =?utf-8?q?caf=C3=A9?= =?utf-8?q?_au_lait?="
    assert message.decode_words(short) == str(email.header.make_header(real(short)))   # short values: as before


def test_the_fuzz_target_accepts_its_seeds_and_its_fallback_loop_runs(monkeypatch, tmp_path, capsys):
    """fuzz/fuzz_message.py stays runnable: its checks pass on every seed, and without atheris the
    plain mutation loop seeds a corpus and runs (bounded: 1 s)."""
    import importlib.util
    import sys

    monkeypatch.setitem(sys.modules, "atheris", None)           # the fallback path, no instrumentation here
    path = Path(__file__).resolve().parents[2] / "fuzz" / "fuzz_message.py"
    spec = importlib.util.spec_from_file_location("fuzz_message_under_test", path)
    fuzz = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fuzz)
    for seed in fuzz.seeds():
        fuzz.check(seed)
    assert fuzz.fallback(["-max_total_time=1", str(tmp_path / "corpus")]) == 0
    assert len(list((tmp_path / "corpus").iterdir())) == len(fuzz.seeds())
    assert "no failure" in capsys.readouterr().out
