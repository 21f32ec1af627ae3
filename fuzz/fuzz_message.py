"""Coverage-guided fuzzing of the MIME/archive parser (``relay.message.parse``) with atheris.

    .venv/bin/pip install atheris                       # once (a wheel; no compiler needed on x86-64)
    .venv/bin/python fuzz/fuzz_message.py -max_total_time=60 var/fuzz/corpus    # or: fuzz/run.sh 60

Arguments are libFuzzer's. An empty corpus directory is seeded first with the
messages of ``tests/data/policy-cases`` plus a few hostile shapes (deep
nesting, a nested zip, a part flood). Each input must parse, and have its
text extracted (``relay.extract.extract``), without an exception and within every bound of :class:`relay.message.ParseLimits` (small
limits here, so the fuzzer reaches them); a violation raises and libFuzzer
saves the input as ``crash-*``. Reproduce one with
``.venv/bin/python fuzz/fuzz_message.py crash-FILE``.

Without atheris (``ImportError``) the same checks run in a plain random
mutation loop over the seeds for the time given, without coverage guidance.
"""

from __future__ import annotations

import base64
import io
import random
import sys
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

try:
    import atheris
except ImportError:  # pragma: no cover - the fallback loop below
    atheris = None

if atheris is not None:
    with atheris.instrument_imports(include=["relay", "email", "zipfile", "tarfile", "gzip", "base64", "binascii",
                                             "quopri", "tnefparse", "py7zr", "rarfile"]):
        from relay.extract import ExtractLimits, extract
        from relay.message import ParseLimits, parse
else:
    from relay.extract import ExtractLimits, extract
    from relay.message import ParseLimits, parse

LIMITS = ParseLimits(max_depth=6, max_parts=40, max_decoded_bytes=200_000, max_archive_members=10,
                     max_archive_depth=2, max_compression_ratio=50)
TEXT_LIMITS = ExtractLimits(max_bytes=200_000, timeout=10.0, max_unpacked_bytes=1_000_000)


class BoundViolated(AssertionError):
    """An input made the parser step over one of its limits."""


def check(data: bytes) -> None:
    msg = parse(data, LIMITS)
    parts = list(msg.walk())
    if len(parts) > LIMITS.max_parts:
        raise BoundViolated(f"{len(parts)} parts > max_parts {LIMITS.max_parts}")
    depth = max(p.index.split("/")[0].count(".") for p in parts)
    if depth > LIMITS.max_depth:
        raise BoundViolated(f"MIME depth {depth} > {LIMITS.max_depth}")
    archive_depth = max(p.index.count("/") for p in parts)
    if archive_depth > LIMITS.max_archive_depth:
        raise BoundViolated(f"archive depth {archive_depth} > {LIMITS.max_archive_depth}")
    decoded = sum(len(p.payload) for p in parts if p.origin == "mime")
    if decoded > LIMITS.max_decoded_bytes:
        raise BoundViolated(f"{decoded} decoded bytes > {LIMITS.max_decoded_bytes}")
    for p in parts:
        p.text()
        _ = p.label, p.extension
    for finding in msg.problems:
        if finding.kind not in ("malformed", "limit_exceeded"):
            raise BoundViolated(f"unexpected problem kind {finding.kind}")
    text = extract(msg, TEXT_LIMITS)            # "never raises on bad input": a raise here would tempfail forever
    if sum(len(c.text.encode()) for c in text.chunks) > TEXT_LIMITS.max_bytes + 4096:
        raise BoundViolated("extracted text over max_bytes")


def TestOneInput(data: bytes) -> None:  # noqa: N802 - atheris' name
    check(data)


# ------------------------------------------------------------------------------- seeds


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def seeds() -> list[bytes]:
    out = [p.read_bytes() for p in sorted((ROOT / "tests" / "data" / "policy-cases").glob("*.eml"))]
    deep = b"Content-Type: text/plain\r\n\r\nx\r\n"
    for level in range(10):
        deep = b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n%s\r\n--b%d--\r\n" % (level, level, deep, level)
    out.append(b"From: a@example.org\r\n" + deep)
    nested = _zip({"a.zip": _zip({"b.zip": _zip({"c.txt": b"\0" * 100_000})})})
    out.append(b"From: a@example.org\r\nContent-Type: application/zip; name=n.zip\r\nContent-Transfer-Encoding: base64\r\n\r\n"
               + base64.encodebytes(nested))
    out.append(b"From: a@example.org\r\nContent-Type: multipart/mixed; boundary=s\r\n\r\n"
               + b"--s\r\nContent-Type: message/rfc822\r\n\r\nSubject: x\r\n\r\ny\r\n" * 60 + b"--s--\r\n")
    return out


def seed_corpus(directory: Path) -> None:
    if directory.is_dir() and any(directory.iterdir()):
        return
    directory.mkdir(parents=True, exist_ok=True)
    for n, data in enumerate(seeds()):
        (directory / f"seed-{n:03d}").write_bytes(data)


# ------------------------------------------------------------------------------- fallback without atheris


def mutate(rng: random.Random, data: bytes, pool: list[bytes]) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randrange(1, 8)):
        at = rng.randrange(len(buf) + 1)
        op = rng.randrange(5)
        if op == 0 and buf:
            buf[min(at, len(buf) - 1)] = rng.randrange(256)
        elif op == 1:
            del buf[at:at + rng.randrange(1, 300)]
        elif op == 2:
            buf[at:at] = bytes(buf[at:at + rng.randrange(1, 2000)]) * rng.randrange(1, 5)
        elif op == 3:
            other = rng.choice(pool)
            start = rng.randrange(len(other) + 1)
            buf[at:at] = other[start:start + rng.randrange(1, 500)]
        else:
            buf[at:at] = rng.choice([b"\r\n--", b"\r\n\r\n", b"boundary=", b"=?utf-8?b?", b"\x00", b"PK\x03\x04"])
    return bytes(buf)


def fallback(argv: list[str]) -> int:
    seconds, prefix = 60.0, ""
    dirs = []
    for arg in argv:
        if arg.startswith("-max_total_time="):
            seconds = float(arg.split("=", 1)[1])
        elif arg.startswith("-artifact_prefix="):
            prefix = arg.split("=", 1)[1]
        elif not arg.startswith("-"):
            dirs.append(Path(arg))
    for d in dirs:
        if d.is_file():
            check(d.read_bytes())
            print(f"{d}: ok")
            return 0
        seed_corpus(d)
    pool = [p.read_bytes() for d in dirs for p in sorted(d.iterdir())] or seeds()
    rng, runs, deadline = random.Random(), 0, time.monotonic() + seconds
    print(f"WARNING: atheris is not installed: random mutation loop for {seconds:.0f}s, NOT coverage-guided"
          " (pip install -e '.[fuzz]')", file=sys.stderr, flush=True)
    while time.monotonic() < deadline:
        data = mutate(rng, rng.choice(pool), pool)
        try:
            check(data)
        except Exception:
            out = Path(f"{prefix}crash-{int(time.time())}")
            out.write_bytes(data)
            print(f"crash after {runs} runs, input saved to {out}")
            raise
        runs += 1
    print(f"done: {runs} inputs, no failure (random mutation loop, NOT coverage-guided)")
    return 0


def main() -> int:
    if atheris is None:
        return fallback(sys.argv[1:])
    for arg in sys.argv[1:]:
        if not arg.startswith("-") and not Path(arg).is_file():
            seed_corpus(Path(arg))
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main())
