"""A reproducible outbound-mail workload for the benchmarks (fixed seed, same bytes every run).

The mix (by message count):

  plain    60 %  short mail: text/plain, or multipart/alternative text + HTML (1-25 KB)
  office   25 %  a real docx, xlsx or pdf attachment of 50 KB to 2 MB (log-uniform), base64
  pd       10 %  personal data with context: valid UK NI numbers and NHS numbers (mod 11)
  malware   5 %  the EICAR test file (bare .com or inside a zip), or a risky type (.exe, .js)

Documents are built with ``tests/data/documents/generate.py`` (zipfile + XML,
hand-built PDF); their size comes from text plus an incompressible image part,
as real office files carry pictures. Every message goes from staff
(``@example.ac.uk``) to one external recipient. ``fixed(kind, size)`` gives the
single-message workloads of the targets: ``plain`` (text only) and ``mime``
(text + a base64 attachment) of a given size.

    .venv/bin/python bench/workload.py --count 1000 --seed 42 --out /tmp/wl   # writes NNNNN-class.eml + summary
"""

from __future__ import annotations

import argparse
import base64
import importlib.util
import io
import json
import random
import string
import sys
import zipfile
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("bench_docgen", ROOT / "tests/data/documents/generate.py")
docgen = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(docgen)

MIX = (("plain", 0.60), ("office", 0.25), ("pd", 0.10), ("malware", 0.05))
EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
SENDER = "alice.smith@example.ac.uk"
WORDS = ("the meeting agenda draft report budget review project timetable students module lecture "
         "rehearsal performance studio recording deadline feedback assessment committee minutes schedule "
         "room booking library access course handbook term week update thanks please attached notes "
         "following discussion proposal venue audition concert programme marketing ensemble workshop").split()
NINO_FIRST = [c for c in string.ascii_uppercase if c not in "DFIQUV"]
NINO_SECOND = [c for c in string.ascii_uppercase if c not in "DFIOQUV"]
NINO_BAD = {"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"}
_STAMP = (2026, 11, 1, 12, 0, 0)


@dataclass(frozen=True, slots=True)
class Message:
    name: str          # NNNNN-class
    kind: str          # plain | office | pd | malware
    data: bytes        # CRLF line ends, not dot-stuffed
    sender: str
    recipients: tuple[str, ...]


def _sentence(r: random.Random, n: int | None = None) -> str:
    words = [r.choice(WORDS) for _ in range(n or r.randint(6, 18))]
    return " ".join(words).capitalize() + "."


def _paragraphs(r: random.Random, size: int) -> list[str]:
    out, total = [], 0
    while total < size:
        p = " ".join(_sentence(r) for _ in range(r.randint(2, 6)))
        out.append(p)
        total += len(p) + 2
    return out


def _wrap(b64: bytes) -> bytes:
    return b"\r\n".join(b64[i:i + 76] for i in range(0, len(b64), 76))


def _headers(r: random.Random, index: int, rcpt: str, subject: str, ctype: str) -> str:
    return (f"From: Alice Smith <{SENDER}>\r\nTo: <{rcpt}>\r\nSubject: {subject}\r\n"
            f"Date: {formatdate(1795000000 + index * 7)}\r\n"
            f"Message-ID: <bench.{index}.{r.randrange(1 << 30):x}@example.ac.uk>\r\n"
            f"MIME-Version: 1.0\r\n{ctype}\r\n\r\n")


def _recipient(r: random.Random) -> str:
    return f"{r.choice(['bob', 'carol', 'dave', 'erin', 'frank'])}@{r.choice(['partner.example.com', 'agency.example.org'])}"


def nino(r: random.Random) -> str:
    while True:
        p = r.choice(NINO_FIRST) + r.choice(NINO_SECOND)
        if p not in NINO_BAD:
            break
    d = "".join(r.choice(string.digits) for _ in range(6))
    return f"{p} {d[:2]} {d[2:4]} {d[4:]} {r.choice('ABCD')}"


def nhs(r: random.Random) -> str:
    while True:
        body = str(r.randint(400, 499)) + "".join(r.choice(string.digits) for _ in range(6))
        check = 11 - sum(int(c) * w for c, w in zip(body, range(10, 1, -1))) % 11
        check = 0 if check == 11 else check
        if check != 10:
            d = body + str(check)
            return f"{d[:3]} {d[3:6]} {d[6:]}"


def _text_message(r: random.Random, index: int, rcpt: str, subject: str, text: str, html: bool) -> bytes:
    if not html:
        return (_headers(r, index, rcpt, subject, "Content-Type: text/plain; charset=utf-8") + text).encode()
    b = f"=_alt_{index}"
    hbody = "".join(f"<p>{p}</p>\r\n" for p in text.split("\r\n\r\n"))
    return (_headers(r, index, rcpt, subject, f'Content-Type: multipart/alternative; boundary="{b}"')
            + f"--{b}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\n"
            + f"--{b}\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><body>{hbody}</body></html>\r\n"
            + f"--{b}--\r\n").encode()


def _with_attachment(r: random.Random, index: int, rcpt: str, subject: str, text: str,
                     filename: str, ctype: str, payload: bytes) -> bytes:
    b = f"=_mixed_{index}"
    head = (_headers(r, index, rcpt, subject, f'Content-Type: multipart/mixed; boundary="{b}"')
            + f"--{b}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\n"
            + f'--{b}\r\nContent-Type: {ctype}; name="{filename}"\r\nContent-Transfer-Encoding: base64\r\n'
            + f'Content-Disposition: attachment; filename="{filename}"\r\n\r\n').encode()
    return head + _wrap(base64.b64encode(payload)) + f"\r\n--{b}--\r\n".encode()


def _pad_zip(data: bytes, member: str, size: int, r: random.Random) -> bytes:
    """The package rebuilt with fixed timestamps (reproducible bytes), plus an incompressible
    picture so that it is about ``size`` bytes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for info in src.infolist():
            zf.writestr(zipfile.ZipInfo(info.filename, _STAMP), src.read(info), zipfile.ZIP_DEFLATED)
        missing = size - buf.tell() - 200
        if missing > 0:
            zf.writestr(zipfile.ZipInfo(member, _STAMP), b"\x89PNG\r\n\x1a\n" + r.randbytes(missing), zipfile.ZIP_STORED)
    return buf.getvalue()


def _pdf_padded(pages: list[list[str]], size: int, r: random.Random) -> bytes:
    data = docgen.pdf(pages)
    missing = size - len(data)
    if missing <= 0:
        return data
    # an unreferenced image XObject before the trailer: incompressible bytes, the xref stays valid
    # because the generator writes offsets only for its own objects (this object comes after them).
    img = r.randbytes(missing)
    obj = (b"999 0 obj\n<< /Type /XObject /Subtype /Image /Width 1 /Height 1 /BitsPerComponent 8 "
           b"/ColorSpace /DeviceRGB /Filter /DCTDecode /Length %d >>\nstream\n" % len(img)) + img + b"\nendstream\nendobj\n"
    cut = data.rindex(b"\nxref\n") + 1
    head, tail = data[:cut], data[cut:]
    # startxref moves by len(obj)
    start = int(tail.rsplit(b"startxref\n", 1)[1].split(b"\n", 1)[0])
    tail = tail.replace(b"startxref\n%d\n" % start, b"startxref\n%d\n" % (start + len(obj)))
    return head + obj + tail


def _document(r: random.Random, size: int) -> tuple[str, str, bytes]:
    kind = r.choice(("docx", "docx", "xlsx", "pdf"))
    text_bytes = min(size // 4, 60_000)
    paras = _paragraphs(r, text_bytes)
    if kind == "docx":
        data = _pad_zip(docgen.docx(paras), "word/media/image1.png", size, r)
        return "report.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document", data
    if kind == "xlsx":
        rows = [["Item", "Owner", "Amount", "Notes"]]
        rows += [[f"Line {i}", r.choice(WORDS).title(), round(r.uniform(10, 5000), 2), _sentence(r, 8)]
                 for i in range(max(10, text_bytes // 80))]
        data = _pad_zip(docgen.xlsx({"Budget": rows}), "xl/media/image1.png", size, r)
        return "budget.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", data
    lines = [p[i:i + 90] for p in paras for i in range(0, len(p), 90)]
    pages = [lines[i:i + 50] for i in range(0, len(lines), 50)] or [["(empty)"]]
    return "minutes.pdf", "application/pdf", _pdf_padded(pages, size, r)


def _pd_text(r: random.Random) -> str:
    name = f"{r.choice(['Jane', 'Tom', 'Priya', 'Kwame', 'Olga'])} {r.choice(['Patel', 'Jones', 'Nowak', 'Mensah', 'Brown'])}"
    lines = [
        f"Dear colleague,\r\n\r\nAs requested, the details for {name} are below.",
        f"National Insurance number: {nino(r)}",
        f"NHS number: {nhs(r)}" if r.random() < 0.7 else f"Her NI number is {nino(r)} for the payroll form.",
        f"Date of birth: {r.randint(1, 28)}/{r.randint(1, 12)}/{r.randint(1960, 2004)}",
        " ".join(_sentence(r) for _ in range(4)),
        "Kind regards,\r\nAlice",
    ]
    return "\r\n\r\n".join(lines) + "\r\n"


def _malware(r: random.Random, index: int, rcpt: str) -> bytes:
    text = "Please see the attached file.\r\n" + _sentence(r) + "\r\n"
    choice = r.choice(("eicar", "eicar-zip", "exe", "js"))
    if choice == "eicar":
        return _with_attachment(r, index, rcpt, "Tool", text, "tool.com", "application/octet-stream", EICAR)
    if choice == "eicar-zip":
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(zipfile.ZipInfo("readme.txt", _STAMP), _sentence(r), zipfile.ZIP_DEFLATED)
            zf.writestr(zipfile.ZipInfo("eicar.com", _STAMP), EICAR, zipfile.ZIP_DEFLATED)
        return _with_attachment(r, index, rcpt, "Files", text, "files.zip", "application/zip", buf.getvalue())
    if choice == "exe":
        pe = bytearray(r.randbytes(4096))
        pe[:2] = b"MZ"
        pe[0x3C:0x40] = (0x80).to_bytes(4, "little")
        pe[0x80:0x84] = b"PE\0\0"
        return _with_attachment(r, index, rcpt, "Setup", text, "setup.exe", "application/octet-stream", bytes(pe))
    js = ("var s = new ActiveXObject('WScript.Shell');\r\ns.Run('cmd /c echo hello');\r\n").encode()
    return _with_attachment(r, index, rcpt, "Invoice", text, "invoice.js", "application/javascript", js)


def generate(count: int, seed: int = 42) -> list[Message]:
    """``count`` messages of the mix, the same bytes for the same (count, seed)."""
    r = random.Random(seed)
    out = []
    for i in range(count):
        x, acc = r.random(), 0.0
        kind = MIX[-1][0]
        for name, share in MIX:
            acc += share
            if x < acc:
                kind = name
                break
        rcpt = _recipient(r)
        subject = _sentence(r, 5)[:-1]
        if kind == "plain":
            text = "\r\n\r\n".join(_paragraphs(r, int(r.uniform(0.5, 12) * 1024))) + "\r\n"
            data = _text_message(r, i, rcpt, subject, text, html=r.random() < 0.5)
        elif kind == "office":
            size = int(50 * 1024 * (2048 / 50) ** r.random())        # log-uniform 50 KB .. 2 MB
            filename, ctype, payload = _document(r, size)
            data = _with_attachment(r, i, rcpt, subject, "Please find the document attached.\r\n\r\n"
                                    + _sentence(r) + "\r\n", filename, ctype, payload)
        elif kind == "pd":
            data = _text_message(r, i, rcpt, "Employee details", _pd_text(r), html=False)
        else:
            data = _malware(r, i, rcpt)
        out.append(Message(f"{i:05d}-{kind}", kind, data, SENDER, (rcpt,)))
    return out


def fixed(kind: str, size: int, count: int = 1, seed: int = 7) -> list[Message]:
    """``count`` copies of one clean message of ``size`` bytes: ``plain`` text, or ``mime`` with a base64 attachment."""
    r = random.Random(seed)
    rcpt = "bob@partner.example.com"
    if kind == "plain":
        text = "\r\n\r\n".join(_paragraphs(r, size)) + "\r\n"
        data = _text_message(r, 0, rcpt, "Notes from the meeting", text, html=False)
    else:
        # about 60 % of the size is the base64 of a small docx (text + picture), the rest text
        text = "\r\n\r\n".join(_paragraphs(r, size // 3)) + "\r\n"
        doc = _pad_zip(docgen.docx(_paragraphs(r, 2000)), "word/media/image1.png", int(size * 0.6 * 3 / 4), r)
        data = _with_attachment(r, 0, rcpt, "Notes from the meeting", text, "notes.docx",
                                "application/vnd.openxmlformats-officedocument.wordprocessingml.document", doc)
    return [Message(f"{i:05d}-{kind}", kind, data, SENDER, (rcpt,)) for i in range(count)]


def summary(messages: list[Message]) -> dict:
    """Counts and sizes per class, for the benchmark output."""
    out: dict[str, dict] = {}
    for m in messages:
        s = out.setdefault(m.kind, {"count": 0, "bytes": 0, "min": 1 << 62, "max": 0})
        s["count"] += 1
        s["bytes"] += len(m.data)
        s["min"] = min(s["min"], len(m.data))
        s["max"] = max(s["max"], len(m.data))
    return out


def describe(messages: list[Message]) -> str:
    total = sum(len(m.data) for m in messages)
    lines = [f"{len(messages)} messages, {total / 1e6:.1f} MB in all"]
    for kind, s in summary(messages).items():
        lines.append(f"  {kind:8s} {s['count']:6d} msgs ({100 * s['count'] / len(messages):4.1f} %), "
                     f"{s['min'] / 1024:.1f}-{s['max'] / 1024:.1f} KB, mean {s['bytes'] / s['count'] / 1024:.1f} KB")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--out", type=Path, help="write each message as DIR/NNNNN-class.eml and DIR/summary.json")
    args = ap.parse_args()
    messages = generate(args.count, args.seed)
    print(describe(messages))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        for m in messages:
            (args.out / f"{m.name}.eml").write_bytes(m.data)
        (args.out / "summary.json").write_text(json.dumps(summary(messages), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
