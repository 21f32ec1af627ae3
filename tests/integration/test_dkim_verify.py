"""What goes out verifies with DKIM verifiers that are not dkimpy.

Keys come from the real ``relay dkim keygen`` command and the DNS records the
verifiers see are the TXT records it printed. Each message goes through the act
stage's edit (``tag``, then ``Signer.sign`` with the tag headers the verdict
owns), a release from a real quarantine store to a real SMTP sink, or a real
``relay serve`` in front of one, then through:

- Perl Mail::DKIM (Debian libmail-dkim-perl), its DNS lookup answered from the
  printed records (RSA only: Debian 12's Mail::DKIM has no Ed25519);
- OpenDKIM (``opendkim -t`` with ``TestPublicKeys``), RSA and Ed25519.
"""

from __future__ import annotations

import asyncio
import email
import email.header
import email.message
import email.policy
import os
import re
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from relay.config import DkimKey, HostPort, Settings
from relay.dkim import Signer, load_key
from relay.quarantine import open_store
from relay.quarantine.release import release
from relay.tagging import owned_names, split_head, tag
from tests.fixtures.smtp import MINIMAL_POLICY
from relay.verdict import Action, RuleMatch, TagSpec, Verdict

PERL_VERIFIER = r"""
use strict;
use warnings;
use Mail::DKIM::Verifier;
use Mail::DKIM::DNS;
use Net::DNS;
my ($keys, $message) = @ARGV;
my %txt;
open(my $kf, '<', $keys) or die "keys: $!";
while (<$kf>) { chomp; my ($n, $v) = split /\t/, $_, 2; $txt{lc $n} = $v; }
close $kf;
{
    no warnings 'redefine';
    # Answer the selector's TXT lookup from the records file: no network.
    *Mail::DKIM::DNS::query = sub {
        my ($name, $type) = @_;
        my $v = $txt{lc $name};
        if (!defined $v) { $@ = 'NXDOMAIN'; return; }
        $@ = 'NOERROR';
        return (Net::DNS::RR->new(name => $name, type => 'TXT', txtdata => [unpack('(a255)*', $v)]));
    };
}
my $dkim = Mail::DKIM::Verifier->new();
open(my $mf, '<:raw', $message) or die "message: $!";
while (<$mf>) { $dkim->PRINT($_); }
close $mf;
$dkim->CLOSE;
foreach my $sig ($dkim->signatures) {
    printf "sig d=%s s=%s result=%s\n", $sig->domain, $sig->selector, $sig->result;
}
"""

_OPENDKIM_RESULT = re.compile(r'dkim=(\w+)(?: reason="[^"]*")?[^;]*?header\.d=(\S+)[^;]*?header\.s=(\S+?)[\s;]')


@dataclass(frozen=True)
class Verifiers:
    """Runs the real verifiers on a message; results are [(d, s, result)], top signature first."""

    workdir: Path
    records: dict[str, str]          # "selector._domainkey.domain" -> TXT value

    def _files(self, msg: bytes) -> tuple[Path, Path]:
        path = self.workdir / "message.eml"
        path.write_bytes(msg)
        keys = self.workdir / "keys.tsv"
        keys.write_text("".join(f"{name}\t{value}\n" for name, value in self.records.items()))
        return path, keys

    def perl(self, msg: bytes) -> list[tuple[str, str, str]]:
        path, keys = self._files(msg)
        script = self.workdir / "verify.pl"
        script.write_text(PERL_VERIFIER)
        done = subprocess.run(["perl", str(script), str(keys), str(path)], capture_output=True, text=True,
                              timeout=60, check=True)
        return re.findall(r"^sig d=(\S+) s=(\S+) result=(\w+)$", done.stdout, re.M)

    def opendkim(self, msg: bytes) -> list[tuple[str, str, str]]:
        path, _ = self._files(msg)
        keys = self.workdir / "keys.txt"
        keys.write_text("".join(f"{name} {value}\n" for name, value in self.records.items()))
        conf = self.workdir / "opendkim.conf"
        conf.write_text(f"Mode v\nSyslog no\nAlwaysAddARHeader yes\nTestPublicKeys {keys}\n")
        done = subprocess.run([opendkim_binary(), "-x", str(conf), "-vvv", "-t", str(path)],
                              capture_output=True, text=True, timeout=60)
        out = done.stdout + done.stderr
        assert done.returncode == 0 and "Authentication-Results" in out, out
        return [(d, s, r) for r, d, s in _OPENDKIM_RESULT.findall(out)]

    def all(self, msg: bytes, ed25519: bool = False) -> dict[str, list[tuple[str, str, str]]]:
        """Every verifier that understands the key type."""
        out = {"opendkim": self.opendkim(msg)}
        if not ed25519:
            out["perl"] = self.perl(msg)
        return out


def opendkim_binary() -> str:
    found = shutil.which("opendkim") or ("/usr/sbin/opendkim" if os.path.exists("/usr/sbin/opendkim") else None)
    assert found, "OpenDKIM is needed: apt-get install opendkim (scripts/system-deps.sh test)"
    return found


def keygen(workdir: Path, domain: str, selector: str, kind: str, bits: int = 2048) -> tuple[Path, str, str]:
    """Run the real ``relay dkim keygen``; (key path, record name, record value joined from its strings)."""
    out = workdir / f"{selector}.{domain}.pem"
    relay = Path(sys.executable).with_name("relay")
    done = subprocess.run([str(relay), "dkim", "keygen", "--domain", domain, "--selector", selector,
                           "--type", kind, "--bits", str(bits), "--out", str(out)],
                          capture_output=True, text=True, timeout=120, check=True)
    line = done.stdout.strip().splitlines()[-1]
    name, _, strings = line.partition(" IN TXT ")
    return out, name, "".join(re.findall(r'"([^"]*)"', strings))


@dataclass(frozen=True)
class World:
    verify: Verifiers
    settings: Settings
    signer: Signer
    foreign: Signer          # a signer for another organisation's domain (existing signatures)
    key_files: dict[str, Path]


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    workdir = tmp_path_factory.mktemp("dkim")
    records: dict[str, str] = {}
    files: dict[str, Path] = {}
    for domain, selector, kind in (("example.ac.uk", "rsa2026", "rsa"), ("ed.example.org", "ed2026", "ed25519"),
                                   ("partner.example", "p1", "rsa"), ("both.example", "r1", "rsa"),
                                   ("both.example", "e1", "ed25519")):
        path, name, value = keygen(workdir, domain, selector, kind)
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        records[name] = value
        files[selector] = path
    settings = Settings.from_mapping({
        "quarantine": f"sqlite:///{workdir}/q.sqlite3",
        "dkim_domain": "example.ac.uk", "dkim_selector": "rsa2026", "dkim_key": str(files["rsa2026"]),
        "dkim_keys": [{"domain": d, "selector": sel, "key": str(files[sel])}
                      for d, sel in (("ed.example.org", "ed2026"), ("both.example", "r1"), ("both.example", "e1"))],
    })
    foreign = Signer((load_key(DkimKey("partner.example", "p1", files["p1"])),))
    return World(Verifiers(workdir, records), settings, Signer.from_settings(settings), foreign, files)


def act(world: World, raw: bytes, verdict: Verdict | None = None, mail_from: str = "") -> bytes:
    """The act stage's edit: tag the output copy, then sign it last, the verdict's tag headers among the signed."""
    verdict = verdict or Verdict(Action.TAG, (RuleMatch("contract-external", "4.1", Action.TAG, "contract"),))
    return asyncio.run(world.signer.sign(tag(raw, verdict, world.settings), mail_from,
                                         owned_names(world.settings, verdict)))


def passes(results: dict[str, list], domain: str, selector: str) -> None:
    for verifier, sigs in results.items():
        assert sigs and sigs[0] == (domain, selector, "pass"), f"{verifier}: {sigs}"


def fails(results: dict[str, list]) -> None:
    for verifier, sigs in results.items():
        assert sigs and sigs[0][2] == "fail", f"{verifier}: {sigs}"


def tag_verdict(prefix: str = "", headers=(), rules=("contract-external",)) -> Verdict:
    return Verdict(Action.TAG, tuple(RuleMatch(r, "4.1", Action.TAG, "contract") for r in rules),
                   tag=TagSpec(tuple(headers), prefix))


def crlf(text: str) -> bytes:
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")


def parsed(raw: bytes):
    return email.message_from_bytes(raw, policy=email.policy.compat32)


# --------------------------------------------------------------------------- RSA and Ed25519


def test_rsa_signature_verifies(world, make_message):
    out = act(world, make_message(sender="Alice <alice@example.ac.uk>"))
    passes(world.verify.all(out), "example.ac.uk", "rsa2026")


def test_ed25519_signature_verifies(world, make_message):
    out = act(world, make_message(sender="Eve <eve@ed.example.org>"))
    assert b"a=ed25519-sha256" in out
    passes(world.verify.all(out, ed25519=True), "ed.example.org", "ed2026")


def test_rsa_and_ed25519_side_by_side(world, make_message):
    out = act(world, make_message(sender="Bo <bo@both.example>"))
    assert world.verify.opendkim(out) == [("both.example", "r1", "pass"), ("both.example", "e1", "pass")]
    # Debian 12's Mail::DKIM knows no Ed25519: the RSA signature carries the message there
    assert world.verify.perl(out) == [("both.example", "r1", "pass"), ("both.example", "e1", "invalid")]


@pytest.mark.parametrize("sender, selector, ed", [("alice@example.ac.uk", "rsa2026", False),
                                                  ("eve@ed.example.org", "ed2026", True)])
def test_changes_after_signing_fail(world, make_message, sender, selector, ed):
    domain = sender.split("@")[1]
    out = act(world, make_message(sender=sender, body="Pay 100 pounds.\n"))
    passes(world.verify.all(out, ed), domain, selector)
    # an unsigned trace header added on top by a later hop does not break it
    passes(world.verify.all(b"Received: by mx.example.org\r\n" + out, ed), domain, selector)
    tampered = [
        out.replace(b"Pay 100 pounds.", b"Pay 900 pounds."),                        # body
        out.replace(b"Subject: Hello", b"Subject: Hellp"),                          # signed header
        # over-signed: a second Subject, From, Date or verdict added on top (where a
        # verifier, reading bottom-up, would otherwise never look) breaks it
        b"Subject: Urgent\r\n" + out,
        b"From: boss@example.ac.uk\r\n" + out,
        b"Date: Sun, 29 Nov 2026 10:00:00 +0000\r\n" + out,
        b"X-Policy-Action: accept\r\n" + out,
        out.replace(b"X-Policy-Action: tag", b"X-Policy-Action: accept"),
    ]
    for msg in tampered:
        assert msg != out
        fails(world.verify.all(msg, ed))


# --------------------------------------------------------------------------- kinds of messages


def test_8bit_body_verifies(world):
    raw = crlf("From: alice@example.ac.uk\nTo: bob@example.org\nSubject: Résumé\n"
               "MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n"
               "Grüße, café, 東京, ünïcödé — " * 40 + "\n\ntrailing spaces   \n\n\n")
    out = act(world, raw)
    assert out.endswith(raw.split(b"\r\n\r\n", 1)[1])
    passes(world.verify.all(out), "example.ac.uk", "rsa2026")


def test_smtputf8_message_verifies(world):
    raw = crlf("From: Zoë Ødegård <zoë@example.ac.uk>\nTo: jürgen@beispiel.de\nSubject: Ünïcode subject\n"
               "MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n"
               "Hallo Jürgen\n")
    out = act(world, raw, tag_verdict(prefix="[EXTERN]"))
    assert "Subject: [EXTERN] Ünïcode subject\r\n".encode() in out
    passes(world.verify.all(out), "example.ac.uk", "rsa2026")


def test_existing_signature_kept_and_ours_on_top(world, make_message):
    original = asyncio.run(world.foreign.sign(make_message(sender="carol@partner.example",
                                                           headers={"Sender": "list@example.ac.uk"})))
    passes(world.verify.all(original), "partner.example", "p1")
    out = asyncio.run(world.signer.sign(tag(original, Verdict(Action.ACCEPT, ()), world.settings),
                                        "list@example.ac.uk"))
    assert out.endswith(original)
    # From is partner.example: no key of ours for it, so it goes out with the partner's signature only ...
    assert out.count(b"DKIM-Signature") == 1
    # ... unless the envelope sender's domain may sign.
    fallback = Signer.from_settings(world.settings.replace(dkim_envelope_fallback=True))
    out = asyncio.run(fallback.sign(tag(original, Verdict(Action.ACCEPT, ()), world.settings),
                                    "list@example.ac.uk"))
    for verifier, sigs in world.verify.all(out).items():
        assert sigs == [("example.ac.uk", "rsa2026", "pass"), ("partner.example", "p1", "pass")], verifier


def test_long_folded_headers_verify(world):
    refs = " ".join(f"<{i}.thread.{'x' * 30}@example.ac.uk>" for i in range(40))
    to = ", ".join(f"Person {i} <person{i}@example.org>" for i in range(30))
    msg = email.message.EmailMessage()
    msg["From"] = "alice@example.ac.uk"
    msg["To"] = to
    msg["References"] = refs
    msg["Subject"] = "A very long subject line " * 12
    msg["List-Unsubscribe"] = "<mailto:leave@example.ac.uk>, <https://example.ac.uk/" + "u" * 200 + ">"
    msg.set_content("body\n")
    raw = msg.as_bytes(policy=email.policy.SMTP)
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998 and (b"\r\n\t" in raw or b"\r\n " in raw)
    out = act(world, raw, tag_verdict(prefix="[EXTERNAL]"))
    passes(world.verify.all(out), "example.ac.uk", "rsa2026")
    assert b"list-unsubscribe" in split_head(out).fields[0].raw


# --------------------------------------------------------------------------- what the relay writes


def test_forged_policy_headers_are_gone_and_ours_verify(world):
    raw = crlf("X-Policy-Action: accept\nFrom: alice@example.ac.uk\nx-policy-action:accept\n"
               "X-POLICY-RULES :\n none\nTo: bob@example.org\nx-Policy-Rules: a,\n\tb\nSubject: hi\n\nbody\n")
    out = act(world, raw, tag_verdict())
    msg = parsed(out)
    assert msg.get_all("X-Policy-Action") == ["tag"]
    assert msg.get_all("X-Policy-Rules") == ["contract-external"]
    assert b"accept" not in out and b"none" not in out
    passes(world.verify.all(out), "example.ac.uk", "rsa2026")


def test_subject_prefix_on_encoded_word_subject_verifies(world):
    raw = crlf("From: alice@example.ac.uk\nTo: bob@example.org\n"
               "Subject: =?UTF-8?B?w4l0w6kgZMOpasOg?=\n =?UTF-8?Q?_vu_=E2=82=AC?=\n\nbody\n")
    out = act(world, raw, tag_verdict(prefix="[EXTERNAL]"))
    subject = str(email.header.make_header(email.header.decode_header(parsed(out)["Subject"])))
    assert subject == "[EXTERNAL] Été déjà vu €"
    passes(world.verify.all(out), "example.ac.uk", "rsa2026")
    again = act(world, out, tag_verdict(prefix="[EXTERNAL]"))       # released, re-tagged: not doubled
    assert again.count(b"[EXTERNAL]") == 1
    passes(world.verify.all(again), "example.ac.uk", "rsa2026")


def test_hostile_values_are_sanitised_and_verify(world):
    evil = "x\r\nBcc: victim@example.org\r\n\r\n<script>\x00\x1b[2J\x07 Prüfung ✓"
    verdict = tag_verdict(prefix="[EXT]\r\nCc: x@y.z", headers=(("X-Policy-Note", evil),), rules=(evil, "ok"))
    raw = crlf("From: alice@example.ac.uk\nTo: bob@example.org\nSubject: hi\n\nbody\n")
    out = act(world, raw, verdict)
    head = out.split(b"\r\n\r\n", 1)[0]
    assert head.isascii() and not re.search(rb"[\x00-\x08\x0b-\x1f\x7f]", head.replace(b"\r\n", b""))
    assert max(len(line) for line in head.split(b"\r\n")) <= 78
    msg = parsed(out)
    assert msg.get_all("Bcc") is None and msg.get_all("Cc") is None
    assert out.endswith(b"\r\n\r\nbody\r\n") and out.count(b"\r\n\r\n") == 1
    passes(world.verify.all(out), "example.ac.uk", "rsa2026")


def test_extra_tag_headers_are_signed(world):
    verdict = tag_verdict(headers=(("X-Policy-Note", "contract language to an external recipient"),))
    raw = crlf("X-Policy-Note: approved by legal\nFrom: alice@example.ac.uk\nTo: bob@example.org\nSubject: hi\n\nbody\n")
    out = act(world, raw, verdict)
    assert parsed(out).get_all("X-Policy-Note") == ["contract language to an external recipient"]
    passes(world.verify.all(out), "example.ac.uk", "rsa2026")
    cut = out.index(b"X-Policy-Action")          # just below our signature
    for msg in (out[:cut] + b"X-Policy-Note: approved by legal\r\n" + out[cut:],     # added: over-signed
                out.replace(b"to an external recipient", b"to an internal recipient")):
        assert msg != out
        fails(world.verify.all(msg))


# --------------------------------------------------------------------------- released and relayed mail


FORGED = "X-Policy-Action: accept\nX-Policy-Rules: none-matched\n"


def test_released_message_is_tagged_and_signed(world, quarantine_url, make_decision, make_sink):
    sink = make_sink()
    raw = crlf(FORGED + "From: Alice <alice@example.ac.uk>\nTo: bob@example.org\nSubject: Contract\n"
               "Date: Sat, 28 Nov 2026 10:00:00 +0000\nMessage-ID: <held@example.ac.uk>\n\nPlease sign.\n")
    decision = make_decision(raw=raw)
    settings = world.settings.replace(quarantine=quarantine_url, upstream=HostPort("127.0.0.1", sink.port),
                                      upstream_tls="off", upstream_timeout=20.0)

    async def go():
        async with open_store(quarantine_url) as store:
            qid = await store.hold(decision, raw)
            return await release(store, settings, qid, "reviewer")

    released = asyncio.run(asyncio.wait_for(go(), 60))
    assert released.message.status == "released"
    [captured] = sink.wait_for_messages(1)
    out = captured.data
    assert out.startswith(b"DKIM-Signature: ") and out.endswith(raw.split(b"\r\n\r\n", 1)[1])
    msg = parsed(out)
    assert msg.get_all("X-Policy-Action") == ["tag"]
    assert msg.get_all("X-Policy-Rules") == ["personal-data-external"]
    assert b"accept" not in out and b"none-matched" not in out
    passes(world.verify.all(out), "example.ac.uk", "rsa2026")
    fails(world.verify.all(b"X-Policy-Action: accept\r\n" + out))


DESKTOP_TAG_POLICY = MINIMAL_POLICY + """\
  - id: desktop-client
    clause: "5.4"
    reason: "sent from a desktop mail client ({type})"
    when: {finding: {kind: desktop_client}}
    action: tag
    tag:
      headers: {X-Policy-Client: desktop}
"""


def _through_relay_serve(world, start_relay, make_sink, raw: bytes, policy: str | None = None) -> bytes:
    """``raw`` sent through ``relay serve`` (the RSA key configured): what the sink got."""
    import aiosmtplib

    sink = make_sink()
    relay = start_relay({"RELAY_UPSTREAM": f"127.0.0.1:{sink.port}", "RELAY_DKIM_DOMAIN": "example.ac.uk",
                         "RELAY_DKIM_SELECTOR": "rsa2026", "RELAY_DKIM_KEY": str(world.key_files["rsa2026"])},
                        policy=policy)

    async def go():
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=relay.port, timeout=20, start_tls=False)
        await smtp.connect()
        try:
            await smtp.sendmail("alice@example.ac.uk", ["bob@example.org"], raw)
        finally:
            await smtp.quit()

    asyncio.run(asyncio.wait_for(go(), 60))
    [captured] = sink.wait_for_messages(1)
    return captured.data


@pytest.mark.clamd
def test_relay_serve_signs_what_it_forwards(world, start_relay, make_sink):
    raw = crlf(FORGED + "From: Alice <alice@example.ac.uk>\nTo: bob@example.org\nSubject: Minutes\n"
               "Date: Sat, 28 Nov 2026 10:00:00 +0000\nMessage-ID: <served@example.ac.uk>\n\nSee attached.  \n")
    out = _through_relay_serve(world, start_relay, make_sink, raw)
    assert out.startswith(b"DKIM-Signature: ")
    msg = parsed(out)
    assert msg.get_all("X-Policy-Action") == ["accept"] and msg.get_all("X-Policy-Rules") == [""]
    assert b"none-matched" not in out
    passes(world.verify.all(out), "example.ac.uk", "rsa2026")
    fails(world.verify.all(out.replace(b"See attached.", b"See attachee.")))


@pytest.mark.clamd
def test_relay_serve_signs_the_rules_own_tag_headers(world, start_relay, make_sink):
    """A tag rule's own header (X-Policy-Client) is signed: a copy added after signing breaks it."""
    raw = crlf("X-Policy-Client: web\nFrom: Alice <alice@example.ac.uk>\nTo: bob@example.org\nSubject: Minutes\n"
               "X-Mailer: Microsoft Outlook 16.0\nDate: Sat, 28 Nov 2026 10:00:00 +0000\n"
               "Message-ID: <desktop@example.ac.uk>\n\nSee you at the meeting.\n")
    out = _through_relay_serve(world, start_relay, make_sink, raw, DESKTOP_TAG_POLICY)
    assert parsed(out).get_all("X-Policy-Client") == ["desktop"]
    passes(world.verify.all(out), "example.ac.uk", "rsa2026")
    cut = out.index(b"X-Policy-Action")
    fails(world.verify.all(out[:cut] + b"X-Policy-Client: web\r\n" + out[cut:]))


# --------------------------------------------------------------------------- which key


def test_parent_domain_key_signs_subdomain(world, make_message):
    out = act(world, make_message(sender="lab@chem.example.ac.uk"))
    passes(world.verify.all(out), "example.ac.uk", "rsa2026")


def test_no_key_goes_out_unsigned(world, make_message):
    tagged = tag(make_message(sender="someone@elsewhere.example"), tag_verdict(), world.settings)
    out = asyncio.run(world.signer.sign(tagged, "someone@example.ac.uk"))
    assert out == tagged
    assert world.verify.all(out) == {"opendkim": [], "perl": []}


# --------------------------------------------------------------------------- keygen's record


@pytest.mark.parametrize("kind, bits", [("rsa", 3072), ("ed25519", 2048)])
def test_keygen_record_verifies_its_signatures(tmp_path, make_message, kind, bits):
    path, name, value = keygen(tmp_path, "fresh.example", "k1", kind, bits)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert name == "k1._domainkey.fresh.example" and value.startswith(f"v=DKIM1; k={kind}; p=")
    signer = Signer.from_settings(Settings.from_mapping(
        {"dkim_domain": "fresh.example", "dkim_selector": "k1", "dkim_key": str(path)}))
    out = asyncio.run(signer.sign(make_message(sender="x@fresh.example")))
    verify = Verifiers(tmp_path, {name: value})
    passes(verify.all(out, ed25519=kind == "ed25519"), "fresh.example", "k1")
    (tmp_path / "other").mkdir()
    _, _, other = keygen(tmp_path / "other", "fresh.example", "k1", kind)   # another key's record
    for verifier, sigs in Verifiers(tmp_path, {name: other}).all(out, ed25519=kind == "ed25519").items():
        assert sigs and sigs[0] == ("fresh.example", "k1", "fail"), verifier


# --------------------------------------------------------------------------- many shapes at once


_HEADER_SHAPES = [b"Subject:  x \t y ", b"To: b@c.d", b"to:\tB@C.D ,\r\n folded\r\n\tagain\t ", b"List-Id: <l.x>",
                  b"Date: Sat, 28 Nov 2026 10:00:00 +0000", b"Cc:", b"Received: by x", b"Subject : obsolete space",
                  "Subject: Grüße aus Köln".encode(), b"Content-Type: text/plain;\r\n\t charset=utf-8",
                  b"X-Policy-Action: accept", b"x-policy-rules:\r\n forged", b"Reply-To: <r@example.ac.uk>",
                  b"References: " + b" ".join(b"<%d@x.example>" % i for i in range(30))]
_BODY_SHAPES = [b"a", b" ", b"\t", b"  ", b"\r\n", "é東".encode(), b".", b"\r\n\r\n", b"\r\n.\r\n", b"x" * 200]


def test_many_message_shapes_verify_with_opendkim(world):
    import random

    rnd = random.Random(20261128)
    paths = []
    for i in range(60):
        headers = [b"From: Alice <alice@example.ac.uk>"] + rnd.choices(_HEADER_SHAPES, k=rnd.randrange(0, 10))
        rnd.shuffle(headers)
        raw = b"\r\n".join(headers) + b"\r\n\r\n" + b"".join(rnd.choices(_BODY_SHAPES, k=rnd.randrange(0, 60)))
        raw += b"" if raw.endswith(b"\r\n") else b"\r\n"          # SMTP ends the data with CRLF
        verdict = tag_verdict(prefix=rnd.choice(["", "[EXT]", "[Prüfen]"]), rules=(f"rule-{i}",))
        path = world.verify.workdir / f"shape{i}.eml"
        path.write_bytes(act(world, raw, verdict))
        paths.append(path)
    keys = world.verify.workdir / "keys.txt"
    keys.write_text("".join(f"{name} {value}\n" for name, value in world.verify.records.items()))
    conf = world.verify.workdir / "opendkim.conf"
    conf.write_text(f"Mode v\nSyslog no\nTestPublicKeys {keys}\n")
    done = subprocess.run([opendkim_binary(), "-x", str(conf), "-t", ",".join(map(str, paths))],
                          capture_output=True, text=True, timeout=120)
    out = done.stdout + done.stderr
    good = re.findall(r"^opendkim: (\S+): verification \(s=rsa2026, d=example\.ac\.uk, 2048-bit key\) succeeded$",
                      out, re.M)
    assert sorted(good) == sorted(map(str, paths)), out
