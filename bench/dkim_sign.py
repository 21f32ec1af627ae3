"""What DKIM signing costs per message: dkimpy as shipped beside dkimpy as the relay runs it.

(Not named dkim.py: run as a script, that name would shadow dkimpy's ``dkim`` package.)

    .venv/bin/python bench/dkim_sign.py [--rounds N] [--burst N] [--sizes 20000,1000000,10000000]

All sides sign through ``relay.dkim.Signer`` (dkimpy's ``DKIM.sign``, the
relay's header list, relaxed/relaxed) with throw-away keys (RSA 2048, Ed25519)
on tagged messages of each size, in one run:

- ``pure``: dkimpy as shipped: its own RSA primitive
  (``dkim.crypto.RSASSA_PKCS1_v1_5_sign``, Python ``pow``), its relaxed body
  canonicalisation over the whole body, its parser over the whole message;
- ``openssl``: only the RSA primitive swapped for OpenSSL's
  (``relay.dkim.openssl_rsa_sign``);
- ``relay``: what the relay runs: that swap, plus the body canonicalised in
  pieces (``relay.dkim.relaxed_body``) and handed over without dkimpy's
  line split (``relay.dkim.dkimpy_signer``).

The RSA swap touches RSA only: Ed25519 is PyNaCl (libsodium) on every side. Per
row: ms per signature, wall and CPU (medians of ``--rounds`` sequential
calls), msg/s of ``--burst`` concurrent ``Signer.sign`` calls (worker threads,
as the relay signs), and the longest gap a 1 ms ticker on the event loop sees
while signatures run one at a time in a worker thread (what the GIL held by
signing costs every other connection). Test body: 64-byte lines ending in two
spaces, the worst ordinary case for relaxed canonicalisation. Results:
bench/RESULTS.md, "DKIM signing".
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import dkim as dkimpy
import dkim.canonicalization as dkimpy_canon
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from relay.config import Settings
import relay.dkim as relay_dkim
from relay.dkim import PURE_RELAXED_BODY, PURE_RSA_SIGN, Signer, dkimpy_signer, openssl_rsa_sign, relaxed_body
from relay.tagging import owned_names, tag
from relay.verdict import Action, RuleMatch, TagSpec, Verdict

def _whole_message(message: bytes, algorithm: bytes) -> dkimpy.DKIM:
    return dkimpy.DKIM(message, signature_algorithm=algorithm)


# side -> (RSA primitive, relaxed body canonicalisation, how dkimpy gets the message)
SIDES = {"pure": (PURE_RSA_SIGN, PURE_RELAXED_BODY, _whole_message),
         "openssl": (openssl_rsa_sign, PURE_RELAXED_BODY, _whole_message),
         "relay": (openssl_rsa_sign, relaxed_body, dkimpy_signer)}


def use(side: str) -> None:
    primitive, body, parse = SIDES[side]
    dkimpy.RSASSA_PKCS1_v1_5_sign = primitive
    dkimpy_canon.Relaxed.canonicalize_body = staticmethod(body)
    relay_dkim.dkimpy_signer = parse


def message(size: int) -> bytes:
    head = (b"From: Alice <alice@example.ac.uk>\r\nTo: bob@example.org\r\nSubject: Quarterly figures\r\n"
            b"Date: Sat, 28 Nov 2026 10:00:00 +0000\r\nMessage-ID: <1@example.ac.uk>\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: text/plain; charset=utf-8\r\nX-Policy-Action: accept\r\n\r\n")
    line = b"The quick brown fox jumps over the lazy dog, again and again.  \r\n"
    return head + line * max(1, (size - len(head)) // len(line))


def per_signature_ms(signer: Signer, raw: bytes, own: frozenset[str], rounds: int) -> tuple[float, float]:
    """(wall, CPU) ms per signature, medians of ``rounds`` calls one after another.
    CPU time (this thread's) is the steadier figure on a shared machine."""
    wall, cpu = [], []
    for _ in range(rounds):
        start, start_cpu = time.perf_counter(), time.thread_time()
        signer.sign_sync(raw, "", own)
        wall.append(time.perf_counter() - start)
        cpu.append(time.thread_time() - start_cpu)
    return statistics.median(wall) * 1000, statistics.median(cpu) * 1000


async def burst(signer: Signer, raw: bytes, own: frozenset[str], count: int) -> float:
    """msg/s for ``count`` concurrent signatures in worker threads, as the relay signs."""
    start = time.perf_counter()
    await asyncio.gather(*(signer.sign(raw, "", own) for _ in range(count)))
    return count / (time.perf_counter() - start)


async def loop_gap(signer: Signer, raw: bytes, own: frozenset[str], rounds: int) -> float:
    """The longest gap (ms) a 1 ms ticker on the event loop sees while ``rounds``
    signatures run one after another in a worker thread: the GIL signing holds."""
    gaps: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    task = asyncio.create_task(ticker())
    for _ in range(rounds):
        await signer.sign(raw, "", own)
    done.set()
    await task
    return max(gaps) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=20, help="sequential signatures per row (median)")
    parser.add_argument("--burst", type=int, default=100, help="concurrent signatures per row at 20 KB (larger: fewer)")
    parser.add_argument("--sizes", default="20000,1000000,10000000", help="message sizes in bytes, comma-separated")
    args = parser.parse_args()
    verdict = Verdict(Action.TAG, (RuleMatch("contract-external", "4.1", Action.TAG, "r"),),
                      tag=TagSpec((("X-Policy-Note", "contract language to external recipients"),), "[EXTERNAL]"))
    with tempfile.TemporaryDirectory() as tmp:
        signers = {}
        for name, key in (("rsa-2048", rsa.generate_private_key(public_exponent=65537, key_size=2048)),
                          ("ed25519", ed25519.Ed25519PrivateKey.generate())):
            path = Path(tmp) / f"{name}.pem"
            path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
            path.chmod(0o600)
            settings = Settings.from_mapping({"dkim_domain": "example.ac.uk", "dkim_selector": "s",
                                              "dkim_key": str(path)})
            signers[name] = Signer.from_settings(settings)
        own = owned_names(settings, verdict)
        print(f"{'key':<9} {'size':>9} {'side':<8} {'ms/sig':>8} {'cpu ms':>8} {'msg/s':>8} {'loop gap ms':>12}")
        for size in (int(x) for x in args.sizes.split(",")):
            raw = tag(message(size), verdict, settings)
            scale = max(1, size // 20_000)
            rounds = max(3, args.rounds // min(scale, 4))
            count = max(4, args.burst // min(scale, 25))
            for name, signer in signers.items():
                for side in SIDES:
                    use(side)
                    try:
                        ms, cpu = per_signature_ms(signer, raw, own, rounds)
                        rate = asyncio.run(burst(signer, raw, own, count))
                        gap = asyncio.run(loop_gap(signer, raw, own, rounds))
                    finally:
                        use("relay")
                    print(f"{name:<9} {size:>9} {side:<8} {ms:>8.2f} {cpu:>8.2f} {rate:>8.1f} {gap:>12.1f}", flush=True)

if __name__ == "__main__":
    main()
