"""MB/s of each content scanner on ~1 MB of business mail text. CPU time (process_time), best of 5.

Two bodies: "typical" (prose, a money figure / contract phrase every ~2 KB, 15% quoted reply lines)
and "dense" (a figure or contract phrase in every sentence). "cold" includes preparing the sender's
own text (quote/signature/disclaimer stripping, flatten, fold); "warm" is a scanner that finds the
preparation already done by another scanner of the same message (the pipeline's case).
"""
import asyncio, random, time
from email.message import EmailMessage
from relay.envelope import Envelope
from relay.extract import extract
from relay.message import parse
from relay.organisation import Organisation
from relay.scanners import ScanContext
from relay.scanners.recipients import RecipientsScanner
from relay.scanners.contracts import ContractScanner
from relay.scanners.figures import FiguresScanner
from relay.scanners.language import LanguageScanner
from relay.scanners.client import DesktopClientScanner
from relay.scanners.confidential import ConfidentialScanner
import relay.scanners.text as T

PROSE = [
    "Thanks for sending the agenda for Tuesday's meeting, I have added two items on the timetable.",
    "The assessment board meets in Scunthorpe on 12/03/2026 at 10.30 in room 2.14.",
    "We expect around 350 students and 40 staff, call 020 7946 0000 if anything changes.",
    "In terms of cost the two venues are similar, and the order of the agenda can stay as it is.",
    "Could you kill the stuck process on the build server and restart the replication?",
    "I have reviewed the draft and left comments in the margin, mostly about the methodology section.",
    "Let me know if you need anything else from me before the committee on Thursday.",
    "The new module handbook is on the intranet; version 2.3 fixes the broken links in section 4.",
    "Rehearsals move to the Sussex room next week while the studio floor is being replaced.",
]
HOT = [
    "Please find our quotation for the catering attached; the total is £1,250 (one thousand two hundred and fifty pounds).",
    "The deposit of £200 is due by Friday and the balance of $3,400 on arrival.",
    "Our standard terms and conditions apply; this offer is valid for 30 days.",
]

def body(hot_share):
    random.seed(1)
    paras, size = [], 0
    while size < 1_000_000:
        para = " ".join(random.choice(HOT if random.random() < hot_share else PROSE) for _ in range(4))
        if random.random() < 0.15:
            para = "\n".join("> " + l for l in para.split(". "))
        paras.append(para)
        size += len(para) + 2
    return "\n\n".join(paras)

scanners = (RecipientsScanner(), ContractScanner(), FiguresScanner(), LanguageScanner(), DesktopClientScanner(),
            ConfidentialScanner())
for label, share in (("typical", 0.04), ("dense", 0.5)):
    msg = EmailMessage()
    msg["From"] = "alice@example.ac.uk"
    msg["To"] = ", ".join(f"p{i}@partner{i%5}.org" for i in range(30))
    msg["Subject"] = "Quote for the event"
    msg["X-Mailer"] = "Microsoft Outlook 16.0"
    msg.set_content(body(share))
    message = parse(msg.as_bytes())
    ex = extract(message)
    mb = sum(len(c.text.encode()) for c in ex.chunks) / 1e6
    ctx = ScanContext(message, Envelope("alice@example.ac.uk", ("p1@partner1.org",)),
                      Organisation("x", ("example.ac.uk",)), ex)
    print(f"--- {label}: {mb:.2f} MB of text")
    for s in scanners:
        cold = warm = 1e9
        for _ in range(5):
            T._CACHE.clear()
            t = time.process_time(); out = asyncio.run(s.scan(ctx)); cold = min(cold, time.process_time() - t)
            t = time.process_time(); out = asyncio.run(s.scan(ctx)); warm = min(warm, time.process_time() - t)
        cold, warm = max(cold, 1e-4), max(warm, 1e-4)
        print(f"{s.name:13s} cold {cold*1000:7.1f} ms {mb/cold:8.1f} MB/s | warm {warm*1000:7.1f} ms {mb/warm:8.1f} MB/s"
              f"  findings={[(f.kind, f.type, f.count) for f in out][:3]}")
    T._CACHE.clear()
    t = time.process_time(); [asyncio.run(s.scan(ctx)) for s in scanners]; total = time.process_time() - t
    print(f"all six, one message (shared preparation): {total*1000:.1f} ms = {mb/total:.1f} MB/s")
