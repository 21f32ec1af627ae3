"""relay.dkim (key loading, key choice, signed-header list, dkimpy with OpenSSL's RSA) and ``relay dkim keygen``.

Whether the signatures verify is shown by independent verifiers (Perl
Mail::DKIM, OpenDKIM) in tests/integration/test_dkim_verify.py.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import time
import os
import re
import stat
import threading

import dkim as dkimpy
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.commands.dkim import dkim as dkim_command
from relay.commands.dkim import txt_record
from relay.dkim import (BODY_PIECE, PURE_RELAXED_BODY, PURE_RSA_SIGN, Signer, SigningKey, dkimpy_signer,
                        make_signature, normalise_domain, openssl_rsa_sign, relaxed_body, signed_header_names)
from relay.errors import ConfigError

MESSAGE = (b"From: Alice <alice@example.ac.uk>\r\nTo: bob@example.org\r\nSubject: hi\r\n"
           b"Date: Sat, 28 Nov 2026 10:00:00 +0000\r\nMessage-ID: <1@example.ac.uk>\r\n"
           b"X-Policy-Action: tag\r\n\r\nHello\r\n")


def write_key(path, key, password=None):
    algo = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, algo))
    path.chmod(0o600)
    return path


@pytest.fixture(scope="module")
def keydir(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    write_key(d / "rsa.pem", rsa.generate_private_key(public_exponent=65537, key_size=2048))
    write_key(d / "ed.pem", ed25519.Ed25519PrivateKey.generate())
    return d


def tags(signature: bytes | str) -> dict[str, str]:
    text = signature.decode() if isinstance(signature, bytes) else signature
    text = re.sub(r"\s+", "", text.split(":", 1)[1] if text.startswith("DKIM-Signature") else text)
    return dict(item.split("=", 1) for item in text.strip(";").split(";"))


def keys_setting(keydir, *entries):
    return [{"domain": d, "selector": s, "key": str(keydir / f)} for d, s, f in entries]


# --------------------------------------------------------------------------- loading


def test_no_keys_no_signer(make_settings):
    assert Signer.from_settings(make_settings()) is None


def test_loads_rsa_and_ed25519_and_hides_secrets(make_settings, keydir):
    settings = make_settings(dkim_domain="Example.AC.UK", dkim_selector="s1", dkim_key=str(keydir / "rsa.pem"),
                             dkim_keys=keys_setting(keydir, ("other.example", "ed", "ed.pem")))
    signer = Signer.from_settings(settings)
    assert [(k.domain, k.selector, k.algorithm, k.bits) for k in signer.keys] == [
        ("example.ac.uk", "s1", "rsa-sha256", 2048), ("other.example", "ed", "ed25519-sha256", 256)]
    assert "PRIVATE" not in repr(signer.keys) and "secret" not in repr(signer.keys)


@pytest.mark.parametrize("make, message", [
    (lambda: rsa.generate_private_key(public_exponent=65537, key_size=1024), "RSA key of 1024 bits"),
    (lambda: ec.generate_private_key(ec.SECP256R1()), "unsupported key type"),
])
def test_weak_or_unsupported_keys_stop_startup(make_settings, tmp_path, make, message):
    path = write_key(tmp_path / "k.pem", make())
    with pytest.raises(ConfigError, match=message) as info:
        Signer.from_settings(make_settings(dkim_domain="example.ac.uk", dkim_selector="s1", dkim_key=str(path)))
    assert str(path) in str(info.value)


def test_bad_key_files_stop_startup(make_settings, tmp_path, keydir):
    def load(path, selector="s1"):
        Signer.from_settings(make_settings(dkim_domain="example.ac.uk", dkim_selector=selector, dkim_key=str(path)))

    with pytest.raises(ConfigError, match="cannot read"):
        load(tmp_path / "missing.pem")
    (tmp_path / "junk.pem").write_text("not a key\n")
    with pytest.raises(ConfigError, match="not a PEM private key"):
        load(tmp_path / "junk.pem")
    enc = write_key(tmp_path / "enc.pem", ed25519.Ed25519PrivateKey.generate(), b"secret")
    with pytest.raises(ConfigError, match="encrypted"):
        load(enc)
    with pytest.raises(ConfigError, match="DNS names"):
        load(keydir / "ed.pem", selector="bad selector")


# --------------------------------------------------------------------------- choosing the key


@pytest.fixture(scope="module")
def signer(keydir):
    from relay.config import Settings
    settings = Settings.from_mapping({"dkim_keys": keys_setting(
        keydir, ("example.ac.uk", "main", "rsa.pem"), ("dept.example.ac.uk", "dept", "ed.pem"),
        ("example.ac.uk", "older", "rsa.pem"), ("xn--exmple-cua.org", "idn", "rsa.pem"),
        ("dual.example", "r", "rsa.pem"), ("dual.example", "e", "ed.pem"))})
    return Signer.from_settings(settings)


@pytest.mark.parametrize("from_domain, selector", [
    ("example.ac.uk", "main"),
    ("EXAMPLE.AC.UK", "main"),
    ("lab.example.ac.uk", "main"),            # parent domain
    ("dept.example.ac.uk", "dept"),           # exact beats parent
    ("x.dept.example.ac.uk", "dept"),         # nearest parent
    ("exämple.org", "idn"),                   # U-labels match the A-label key
    ("ac.uk", None),
    ("badexample.ac.uk", None),               # not a subdomain
    ("example.org", None),
])
def test_key_by_from_domain(signer, from_domain, selector):
    raw = f"From: someone@{from_domain}\r\n\r\nx\r\n".encode()
    keys = signer.choose(raw)
    assert (keys[0].selector if keys else None) == selector


def test_envelope_fallback(keydir, make_settings):
    entries = keys_setting(keydir, ("example.ac.uk", "main", "rsa.pem"))
    raw = b"From: someone@gmail.example\r\n\r\nx\r\n"
    off = Signer.from_settings(make_settings(dkim_keys=entries))
    on = Signer.from_settings(make_settings(dkim_keys=entries, dkim_envelope_fallback=True))
    assert off.choose(raw, "bounce@example.ac.uk") == ()
    assert [k.selector for k in on.choose(raw, "bounce@lists.example.ac.uk")] == ["main"]
    assert on.choose(raw, "") == ()
    assert [k.selector for k in on.choose(b"From: a@example.ac.uk\r\n\r\n", "x@other.example")] == ["main"]


def test_normalise_domain():
    assert normalise_domain(" Example.AC.UK. ") == "example.ac.uk"
    assert normalise_domain("exämple.org") == "xn--exmple-cua.org"


# --------------------------------------------------------------------------- signing


def test_signed_header_list_oversigns():
    raw = (b"From: a@b.c\r\nTo: x@y.z\r\nTo: w@y.z\r\nCc: c@d.e\r\nList-Id: <l.b.c>\r\nlist-unsubscribe: <u>\r\n"
           b"Received: by x\r\nX-Policy-Action: tag\r\n\r\n")
    names = signed_header_names(raw, ("X-Policy-Action", "X-Policy-Rules"))
    assert names.count("from") == 2 and names.count("to") == 3 and names.count("subject") == 1
    assert names.count("date") == 1 and names.count("cc") == 1 and "reply-to" not in names
    assert names.count("list-id") == 1 and names.count("list-unsubscribe") == 1
    assert names.count("x-policy-action") == 2 and names.count("x-policy-rules") == 1
    assert "received" not in names and "dkim-signature" not in names


def test_sign_prepends_one_signature_and_keeps_every_byte(signer):
    out = asyncio.run(signer.sign(MESSAGE))
    assert out.endswith(MESSAGE) and out.startswith(b"DKIM-Signature: ")
    sig = out[: len(out) - len(MESSAGE)]
    assert sig.endswith(b"\r\n") and sig.count(b"DKIM-Signature") == 1
    assert all(len(line) <= 78 for line in sig.split(b"\r\n"))
    t = tags(sig)
    assert (t["d"], t["s"], t["a"], t["c"]) == ("example.ac.uk", "main", "rsa-sha256", "relaxed/relaxed")
    h = t["h"].split(":")
    assert h.count("from") == 2 and h.count("subject") == 2 and h.count("x-policy-action") == 2
    assert "message-id" in h and "mime-version" not in h


def test_unsigned_when_no_key(signer):
    raw = b"From: a@elsewhere.example\r\n\r\nx\r\n"
    assert asyncio.run(signer.sign(raw)) is raw
    assert signer.sign_header(raw) is None
    assert signer.sign_sync(b"") == b""


def test_sign_runs_off_the_event_loop(signer, monkeypatch):
    seen = []
    real = Signer.sign_sync

    def spy(self, raw, *args):
        seen.append(threading.get_ident())
        return real(self, raw, *args)

    monkeypatch.setattr(Signer, "sign_sync", spy)

    async def main():
        return threading.get_ident(), await signer.sign(MESSAGE)

    loop_thread, out = asyncio.run(main())
    assert out.endswith(MESSAGE) and seen and seen[0] != loop_thread


def test_rsa_and_ed25519_keys_of_one_domain_both_sign(signer, keydir):
    raw = MESSAGE.replace(b"alice@example.ac.uk", b"alice@dual.example")
    assert [k.selector for k in signer.choose(raw)] == ["r", "e"]       # one per type; "older" never signs
    out = signer.sign_sync(raw)
    assert out.endswith(raw) and out.count(b"DKIM-Signature:") == 2
    assert dkimpy_verifies(out, public_record(keydir / "rsa.pem"))     # the RSA one (dkimpy: RSA only here)
    found = signer.sign_headers(raw)
    assert [(name, tags(value)["a"]) for name, value in found] == [("DKIM-Signature", "rsa-sha256"),
                                                                    ("DKIM-Signature", "ed25519-sha256")]
    assert signer.sign_header(raw)[0] == "DKIM-Signature" and tags(signer.sign_header(raw)[1])["s"] == "r"


def test_sign_header_for_milter(signer):
    name, value = signer.sign_header(MESSAGE.replace(b"example.ac.uk>", b"dept.example.ac.uk>", 1))
    assert name == "DKIM-Signature"
    assert "\r" not in value and not value.startswith(" ") and not value.endswith("\n")
    assert all(line.startswith(" ") for line in value.split("\n")[1:])
    t = tags(value)
    assert (t["d"], t["s"], t["a"]) == ("dept.example.ac.uk", "dept", "ed25519-sha256")


@functools.cache
def public_record(key_path) -> bytes:
    key = serialization.load_pem_private_key(key_path.read_bytes(), None)
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return b"v=DKIM1; k=rsa; p=" + base64.b64encode(der)


def dkimpy_verifies(msg: bytes, record: bytes) -> bool:
    """dkimpy as a third verifier, in-process (RSA; OpenDKIM and Mail::DKIM are the real judges)."""
    return dkimpy.verify(msg, dnsfunc=lambda name, timeout=5: record)


@pytest.mark.parametrize("raw", [
    MESSAGE,
    b"From: a@example.ac.uk\r\n\r\n",                                          # empty body
    b"From: a@example.ac.uk\r\nSubject: no body",                              # no blank line at all
    b"From: a@example.ac.uk\r\nTo:\tb@c.d ,\r\n\t  e@f.g\t \r\n\r\n\tx  y\t\r\n \r\n\r\n",
    b"From: a@example.ac.uk\r\n\r\nlast line without CRLF  ",
    b"From: a@example.ac.uk\r\n\r\n\r\n\r\n",
])
def test_dkimpy_agrees(signer, keydir, raw):
    out = signer.sign_sync(raw)
    assert out.startswith(b"DKIM-Signature:") and out.endswith(raw)
    record = public_record(keydir / "rsa.pem")
    # SMTP ends the data with CRLF: a last line without one reaches the verifier with one
    transported = out if out.endswith(b"\r\n") else out + b"\r\n"
    assert dkimpy_verifies(transported, record)
    tampered = transported.replace(b"\r\nFrom: ", b"\r\nFrom: x", 1)
    assert tampered != transported and not dkimpy_verifies(tampered, record)


def test_signature_layout(signer):
    before = int(time.time())
    sig = make_signature(signer.keys[0], MESSAGE, ("X-Policy-Action",))
    after = int(time.time())
    lines = sig.split(b"\r\n")
    assert lines[-1] == b"" and all(len(line) <= 78 for line in lines)
    assert all(line.startswith(b" ") and line.strip() for line in lines[1:-1])
    t = tags(sig)
    assert before <= int(t["t"]) <= after and t["bh"] and t["b"] and t["c"] == "relaxed/relaxed"
    assert t["h"] == "from:from:to:to:subject:subject:date:date:message-id:x-policy-action:x-policy-action"


def test_obsolete_space_before_colon_and_stray_lines_are_still_signed(signer):
    # dkimpy refuses both; relaxed canonicalisation makes them no matter (OpenDKIM verifies
    # such messages in tests/integration/test_dkim_verify.py)
    raw = b"From: a@example.ac.uk\r\nSubject : x\r\nnot a field\r\nTo: b@c.d\r\n\r\nbody\r\n"
    [sig] = signer.signatures(raw)
    assert tags(sig)["h"].split(":").count("subject") == 2
    assert dkimpy_verifies(sig + b"From: a@example.ac.uk\r\nSubject: x\r\nTo: b@c.d\r\n\r\nbody\r\n",
                           public_record(signer.keys[0].path))


# --------------------------------------------------------------------------- what is signed, and what not


def test_two_from_fields_are_never_signed(signer):
    from structlog.testing import capture_logs

    raw = b"From: alice@example.ac.uk\r\nFrom: mallory@example.ac.uk\r\nTo: b@c.d\r\n\r\nx\r\n"
    with capture_logs() as logs:
        assert signer.sign_sync(raw) is raw
        assert signer.sign_header(raw) is None
    assert [(e["event"], e["reason"], e["from_fields"]) for e in logs] == [("dkim.not_signed", "several From fields", 2)] * 2
    assert "alice" not in repr(logs) and "mallory" not in repr(logs) and "example" not in repr(logs)
    one = raw.replace(b"From: mallory@example.ac.uk\r\n", b"")
    with capture_logs() as logs:
        assert signer.sign_sync(one).count(b"DKIM-Signature:") == 1
    assert logs == []


def test_extra_tag_headers_are_signed_and_oversigned(signer, keydir, make_settings):
    from relay.dkim import outgoing
    from relay.verdict import Action, RuleMatch, TagSpec, Verdict

    verdict = Verdict(Action.TAG, (RuleMatch("contract-external", "4.1", Action.TAG, "r"),),
                      tag=TagSpec((("X-Policy-Note", "contract language"),), ""))
    raw = MESSAGE.replace(b"X-Policy-Action: tag\r\n", b"X-Policy-Note: forged\r\n")
    out = asyncio.run(outgoing(raw, verdict, make_settings(), signer, "alice@example.ac.uk"))
    assert out.count(b"X-Policy-Note") == 1 and b"forged" not in out
    h = tags(out[:out.index(b"X-Policy-Action")])["h"].split(":")
    assert h.count("x-policy-note") == 2 and h.count("x-policy-action") == 2 and h.count("x-policy-rules") == 2
    record = public_record(keydir / "rsa.pem")
    assert dkimpy_verifies(out, record)
    sig_end = out.index(b"X-Policy-Action")
    added = out[:sig_end] + b"X-Policy-Note: accept anyway\r\n" + out[sig_end:]
    assert not dkimpy_verifies(added, record)
    changed = out.replace(b"X-Policy-Note: contract language", b"X-Policy-Note: nothing to see")
    assert changed != out and not dkimpy_verifies(changed, record)
    # without the names (the act stage's old call) the note could be added unnoticed
    plain = signer.sign_sync(out[sig_end:])
    assert "x-policy-note" not in tags(plain[:plain.index(b"X-Policy-Action")])["h"]


def test_a_message_dkimpy_refuses_goes_out_unsigned_and_says_so(signer):
    from structlog.testing import capture_logs

    good = signer.keys[0]
    broken = Signer((SigningKey(good.domain, good.selector, good.algorithm, good.bits, good.path, good.private,
                                b"-----BEGIN RSA PRIVATE KEY-----\nbm90IGEga2V5\n-----END RSA PRIVATE KEY-----\n"),))
    with capture_logs() as logs:
        assert broken.sign_sync(MESSAGE) is MESSAGE
    assert [(e["event"], e["reason"]) for e in logs] == [("dkim.not_signed", "dkimpy: KeyFormatError")]


# --------------------------------------------------------------------------- dkimpy with OpenSSL's RSA


@pytest.fixture(scope="module")
def rsa_keys(keydir):
    """dkimpy's parsed form of four keys: the signer's, another 2048, 3072 and 4096 bits."""
    keys = [serialization.load_pem_private_key((keydir / "rsa.pem").read_bytes(), None)]
    keys += [rsa.generate_private_key(public_exponent=65537, key_size=bits) for bits in (2048, 3072, 4096)]
    return [(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                               serialization.NoEncryption())) for key in keys]


def test_dkimpy_signs_rsa_with_the_openssl_primitive():
    assert dkimpy.RSASSA_PKCS1_v1_5_sign is openssl_rsa_sign
    assert PURE_RSA_SIGN is dkimpy.crypto.RSASSA_PKCS1_v1_5_sign and PURE_RSA_SIGN is not openssl_rsa_sign


@pytest.mark.parametrize("name", ["sha256", "sha1"])
def test_openssl_primitive_gives_dkimpys_bytes(rsa_keys, name):
    for pem in rsa_keys:
        pk = dkimpy.crypto.parse_pem_private_key(pem)
        for data in (b"", b"a", MESSAGE, bytes(range(256)) * 50):
            digest = hashlib.new(name, data)
            ours = openssl_rsa_sign(digest, pk)
            assert ours == bytes(PURE_RSA_SIGN(digest, pk))
            assert len(ours) == (pk["modulus"].bit_length() + 7) // 8


def test_whole_signatures_identical_with_either_primitive(rsa_keys, monkeypatch):
    messages = [MESSAGE, b"From: a@example.ac.uk\r\n\r\n", MESSAGE + "Grüße \t \r\n".encode() * 500]
    monkeypatch.setattr(dkimpy.time, "time", lambda: 1795879055.5)     # the same t= on both sides

    def sign_all():
        return [dkimpy.sign(raw, b"s1", b"example.ac.uk", pem, canonicalize=(b"relaxed", b"relaxed"),
                            include_headers=[b"from", b"from", b"subject", b"to"])
                for pem in rsa_keys for raw in messages]

    swapped = sign_all()
    monkeypatch.setattr(dkimpy, "RSASSA_PKCS1_v1_5_sign", PURE_RSA_SIGN)
    pure = sign_all()
    assert swapped == pure and len(set(pure)) == len(pure) and all(b" t=1795879055;" in s for s in pure)


def test_the_signer_goes_through_the_swapped_primitive(signer, monkeypatch):
    calls = []

    def spy(hash, pk):    # noqa: A002
        calls.append(hash.name)
        return openssl_rsa_sign(hash, pk)

    monkeypatch.setattr(dkimpy, "RSASSA_PKCS1_v1_5_sign", spy)
    assert signer.sign_sync(MESSAGE).startswith(b"DKIM-Signature:")
    assert calls == ["sha256"]


_BODY_BITS = [b"a", b"bc", b" ", b"\t", b"  \t", b"\r\n", b"\n", b"\r", "é".encode(), b"\r\n\r\n"]


@given(st.lists(st.sampled_from(_BODY_BITS), max_size=200), st.integers(1, 40))
@settings(max_examples=300, deadline=None)
def test_relaxed_body_in_pieces_is_dkimpys(bits, piece):
    body = b"".join(bits)
    assert relaxed_body(body, piece) == PURE_RELAXED_BODY(body)


def test_dkimpy_canonicalises_relaxed_bodies_in_pieces():
    assert dkimpy.canonicalization.Relaxed.canonicalize_body is relaxed_body
    assert PURE_RELAXED_BODY is not relaxed_body


def test_signatures_identical_to_plain_dkimpys(rsa_keys, monkeypatch):
    """The body handed over and canonicalised in pieces: dkimpy's own bytes, large or not,
    CRLF only or with bare line ends (which take dkimpy's own parser)."""
    big = b"".join(b"line %d \t of  text\t \r\n" % i for i in range(20000)) + b"\r\n\r\n"
    messages = [MESSAGE, MESSAGE + big, MESSAGE + b"bare\nline ends  \n" * 5000, b"\r\nno header\r\n",
                b"From: a@example.ac.uk\r\nSubject: no body"]
    names = [b"from", b"from", b"subject", b"to"]
    monkeypatch.setattr(dkimpy.time, "time", lambda: 1795879055.5)
    pem = rsa_keys[0]
    ours = [dkimpy_signer(raw, b"rsa-sha256").sign(b"s1", b"example.ac.uk", pem, canonicalize=(b"relaxed", b"relaxed"),
                                                    include_headers=names) for raw in messages]
    monkeypatch.setattr(dkimpy.canonicalization.Relaxed, "canonicalize_body", staticmethod(PURE_RELAXED_BODY))
    plain = [dkimpy.sign(raw, b"s1", b"example.ac.uk", pem, canonicalize=(b"relaxed", b"relaxed"),
                         include_headers=names) for raw in messages]
    assert ours == plain and len(set(plain)) == len(plain)
    assert len(MESSAGE + big) > 10 * BODY_PIECE


# --------------------------------------------------------------------------- keygen


def test_keygen_writes_0600_and_prints_record(tmp_path):
    out = tmp_path / "k.pem"
    result = CliRunner().invoke(dkim_command, ["keygen", "--domain", "Example.ac.uk", "--selector", "s2026",
                                               "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    key = serialization.load_pem_private_key(out.read_bytes(), None)
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 2048
    record = result.stdout.strip().splitlines()[-1]
    m = re.fullmatch(r's2026\._domainkey\.example\.ac\.uk IN TXT ((?:"[^"]{1,255}" ?)+)', record)
    assert m, record
    strings = re.findall(r'"([^"]*)"', m.group(1))
    assert len(strings) == 2 and len(strings[0]) == 255
    assert "".join(strings).startswith("v=DKIM1; k=rsa; p=MIIB")
    assert not list(tmp_path.glob(".keygen-*"))


def test_keygen_refuses_to_overwrite_without_force(tmp_path):
    out = tmp_path / "k.pem"
    out.write_text("precious")
    args = ["keygen", "--domain", "example.ac.uk", "--selector", "s", "--type", "ed25519", "--out", str(out)]
    result = CliRunner().invoke(dkim_command, args)
    assert result.exit_code != 0 and "exists" in result.output and out.read_text() == "precious"
    result = CliRunner().invoke(dkim_command, args + ["--force"])
    assert result.exit_code == 0
    assert isinstance(serialization.load_pem_private_key(out.read_bytes(), None), ed25519.Ed25519PrivateKey)
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    assert re.search(r'"v=DKIM1; k=ed25519; p=[A-Za-z0-9+/]{43}="$', result.stdout.strip())


@pytest.mark.parametrize("args", [["--bits", "1024"], ["--domain", "bad domain"], ["--type", "dsa"]])
def test_keygen_rejects_bad_options(tmp_path, args):
    base = {"--domain": "example.ac.uk", "--selector": "s", "--out": str(tmp_path / "k.pem")}
    base.update(dict(zip(args[::2], args[1::2])))
    result = CliRunner().invoke(dkim_command, ["keygen", *[x for kv in base.items() for x in kv]])
    assert result.exit_code == 2 and not (tmp_path / "k.pem").exists()


def test_txt_record_splits_long_keys():
    record = txt_record("example.ac.uk", "s", "rsa", "A" * 700)
    strings = re.findall(r'"([^"]*)"', record)
    assert [len(s) for s in strings] == [255, 255, 208] and "".join(strings) == "v=DKIM1; k=rsa; p=" + "A" * 700


def test_outgoing_tags_then_signs_last(signer, make_settings):
    from relay.dkim import outgoing
    from relay.verdict import Action, RuleMatch, Verdict

    verdict = Verdict(Action.HOLD, (RuleMatch("personal-data", "5.2", Action.HOLD, "reason"),))  # a release
    out = asyncio.run(outgoing(MESSAGE, verdict, make_settings(), signer, "alice@example.ac.uk"))
    head = out.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    assert head[0].startswith(b"DKIM-Signature: ")
    tagged = out[out.index(b"X-Policy-Action"):]
    assert tagged.startswith(b"X-Policy-Action: tag\r\nX-Policy-Rules: personal-data\r\nFrom: ")
    assert tagged.count(b"X-Policy-Action") == 1
    unsigned = asyncio.run(outgoing(MESSAGE, verdict, make_settings(), None))
    assert unsigned == tagged


def test_record_prints_configured_keys(tmp_path, keydir):
    from relay.commands.dkim import public_value

    env = {"RELAY_DKIM_DOMAIN": "example.ac.uk", "RELAY_DKIM_SELECTOR": "s9",
           "RELAY_DKIM_KEY": str(keydir / "rsa.pem"), "RELAY_CONFIG": ""}
    result = CliRunner().invoke(dkim_command, ["record"], env=env)
    assert result.exit_code == 0, result.output
    key = serialization.load_pem_private_key((keydir / "rsa.pem").read_bytes(), None)
    strings = re.findall(r'"([^"]*)"', result.stdout)
    assert result.stdout.startswith("s9._domainkey.example.ac.uk IN TXT ")
    assert "".join(strings) == "v=DKIM1; k=rsa; p=" + public_value(key)
    bad = CliRunner().invoke(dkim_command, ["record"], env={**env, "RELAY_DKIM_KEY": str(tmp_path / "none.pem")})
    assert bad.exit_code == 1 and "cannot read" in bad.output
    none = CliRunner().invoke(dkim_command, ["record"], env={k: "" for k in env})
    assert none.exit_code == 1 and "no DKIM keys" in none.output


def test_key_readable_by_others_is_warned_about(make_settings, tmp_path, keydir):
    from structlog.testing import capture_logs

    path = tmp_path / "open.pem"
    path.write_bytes((keydir / "ed.pem").read_bytes())
    for mode, warned in ((0o644, True), (0o600, False)):
        path.chmod(mode)
        with capture_logs() as logs:
            Signer.from_settings(make_settings(dkim_domain="example.ac.uk", dkim_selector="s", dkim_key=str(path)))
        assert [e["event"] for e in logs] == (["dkim.key_readable_by_others"] if warned else []), mode


_HEADER_LINES = [b"Subject:  x \t y ", b"To: b@c.d", b"to:\tB@C.D ,", b" folded", b"\tfolded\t ", b"List-Id: <l.x>",
                 b"X-Policy-Action: tag", b"Date: Sat, 28 Nov 2026", b"Cc:", b"Received: by x",
                 "Subject: Grüße".encode(), b"Content-Type: text/plain;", b"\t charset=utf-8", b"X-Other: 1"]
_BODY_PARTS = [b"a", b" ", b"\t", b"  ", b"\r\n", "é".encode(), b".", b"\r\n\r\n"]


@given(st.lists(st.sampled_from(_HEADER_LINES), max_size=12), st.lists(st.sampled_from(_BODY_PARTS), max_size=40))
@settings(max_examples=100, deadline=None)
def test_dkimpy_agrees_on_any_message(signer, keydir, headers, body):
    lines = [b"From: Alice <alice@example.ac.uk>"] + headers
    raw = b"\r\n".join(lines) + b"\r\n\r\n" + b"".join(body) + b"\r\n"
    out = signer.sign_sync(raw)
    assert out.endswith(raw)
    assert dkimpy_verifies(out, public_record(keydir / "rsa.pem"))
