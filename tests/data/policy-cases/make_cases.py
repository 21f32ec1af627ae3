"""Write the .eml files of the shipped-policy corpus (run from the repository root):

    .venv/bin/python tests/data/policy-cases/make_cases.py [NAME ...]

With names (``confidential-encrypted``), only those files are written.

The files are committed; this script says how each was made and rebuilds
them (fixed dates, ids and boundaries; encrypted attachments get fresh salts,
so those bytes differ from run to run). What each case must
give is in manifest.yaml next to it. Attachments come from
tests/data/attachments/samples.py and Debian's clamav-testfiles.
"""

from __future__ import annotations

import base64
import hashlib
import struct
import sys
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))

from tests.data.attachments import samples  # noqa: E402

STAFF = "Alice Archer <alice@example.ac.uk>"
STUDENT = "Sam Student <sam@students.example.ac.uk>"
EXT = "Bob Buyer <bob@partner.example.com>"
INT = "Carol Colleague <carol@example.ac.uk>"
DATE = "Tue, 03 Mar 2026 10:15:00 +0000"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


def nhs_number(stem: str) -> str:
    """A valid NHS number from 9 digits (mod 11, weights 10..2)."""
    total = sum(int(d) * w for d, w in zip(stem, range(10, 1, -1)))
    check = 11 - total % 11
    check = 0 if check == 11 else check
    assert check != 10, "pick another stem"
    return stem + str(check)


def pe() -> bytes:
    """A minimal, harmless PE32 header (DOS stub pointing to a COFF header): libmagic says PE32."""
    dos = bytearray(b"MZ" + bytes(62))
    dos[0x3C:0x40] = struct.pack("<I", 0x40)
    coff = b"PE\0\0" + struct.pack("<HHIIIHH", 0x14C, 1, 0, 0, 0, 0xE0, 0x0102)
    return bytes(dos) + coff + struct.pack("<H", 0x10B) + bytes(0xE0 - 2) + bytes(512)


def mail(name: str, sender: str, to: str, subject: str, body: str, *, cc: str = "", headers=(),
         attachments=(), html: str = "") -> None:
    msg = EmailMessage(policy=SMTP)
    msg["From"] = sender
    msg["To"] = to
    if cc:
        msg["Cc"] = cc
    msg["Subject"] = subject
    msg["Date"] = DATE
    msg["Message-ID"] = f"<{name}@cases.example.ac.uk>"
    for key, value in headers:
        msg[key] = value
    msg.set_content(body)
    if html:
        msg.add_alternative(html, subtype="html")
    for i, (filename, data, mime) in enumerate(attachments):
        maintype, _, subtype = mime.partition("/")
        if maintype == "text":
            msg.add_attachment(data.decode(), subtype=subtype, filename=filename)
        else:
            msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    _fix_boundaries(msg, name)
    write(name, msg.as_bytes())


def _fix_boundaries(msg: EmailMessage, name: str) -> None:
    for n, part in enumerate(msg.walk()):
        if part.is_multipart():
            part.set_boundary(f"=={name}-{n}==")


ONLY: set[str] = set()   # names given on the command line: write only these


def write(name: str, raw: bytes) -> None:
    if ONLY and name not in ONLY:
        return
    raw = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    (HERE / f"{name}.eml").write_bytes(raw)


def raw_mail(name: str, sender: str, to: str, subject: str, head: str, body: str) -> None:
    text = (f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: {DATE}\r\n"
            f"Message-ID: <{name}@cases.example.ac.uk>\r\nMIME-Version: 1.0\r\n{head}\r\n{body}")
    write(name, text.encode())


def locked_docx(filename: str) -> tuple[str, bytes, str]:
    """A Word document that needs a password to open (the protection clause 5.3 asks for)."""
    return filename, samples.encrypted_office("Correct-Horse-7"), DOCX


SMIME_HEAD = ('Content-Type: application/pkcs7-mime; smime-type=enveloped-data; name="smime.p7m"\r\n'
              'Content-Disposition: attachment; filename="smime.p7m"\r\nContent-Transfer-Encoding: base64\r\n')


def smime_body(seed: str) -> str:
    """An S/MIME enveloped-data body: the envelopedData OID, then bytes that stand for the ciphertext."""
    der = b"".join(hashlib.sha256(b"%s-%d" % (seed.encode(), i)).digest() for i in range(24))
    return (base64.encodebytes(b"\x30\x82\x02\xf0\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x07\x03" + der)
            .decode().replace("\n", "\r\n"))


def main() -> None:
    nino = "JG 10 37 59 A"
    nhs = nhs_number("401023213")
    hi = "Hi Bob,\n\n"
    bye = "\n\nBest wishes,\nAlice\n"

    # -- clean business mail: must pass untouched
    mail("clean-meeting", STAFF, EXT, "Visit on Thursday",
         hi + "Thank you for your time on the phone. We look forward to seeing you on Thursday at 10am in "
         "the main building; reception will have a visitor badge ready for you.\n\nThe agenda is attached." + bye,
         attachments=[("agenda.txt", b"1. Welcome\n2. Tour of the studios\n3. Lunch\n", "text/plain")])
    mail("clean-internal-html", STAFF, INT, "Room change for the staff meeting",
         "Hi Carol,\n\nThe staff meeting moves to room 2.14 this week." + bye,
         html="<p>Hi Carol,</p><p>The staff meeting moves to <b>room 2.14</b> this week.</p><p>Best wishes,<br>Alice</p>")
    mail("clean-webmail", STAFF, EXT, "Slides from the workshop",
         hi + "As promised, here is the link to the slides from yesterday's workshop on the course pages." + bye,
         headers=[("User-Agent", "Roundcube Webmail/1.6.5")])
    mail("clean-worded-figure", STAFF, EXT, "Room hire",
         hi + "Thanks for confirming the booking. For your records, the room hire comes to "
         "£1,250 (one thousand two hundred and fifty pounds) for the day." + bye)
    mail("clean-student-internal", STUDENT, INT, "Essay extension",
         "Dear Carol,\n\nCould we talk about my essay deadline after the seminar on Friday?\n\nThanks,\nSam\n")

    # -- 3.1 confidential content to externals
    mail("confidential-external", STAFF, EXT, "Strictly confidential: draft restructuring plan",
         hi + "Please find the draft plan for the new studio layout below; comments welcome before we share it "
         "more widely.\n\n1. Move the recording suite\n2. Open the second practice room" + bye)
    mail("confidential-label-external", STAFF, EXT, "Draft restructuring plan",
         hi + "The draft plan for the new studio layout is below.\n\n1. Move the recording suite" + bye,
         headers=[("msip_labels", "MSIP_Label_f42aa342-8706-4288-bd11-ebb85995028c_Enabled=true; "
                   "MSIP_Label_f42aa342-8706-4288-bd11-ebb85995028c_Name=Confidential; "
                   "MSIP_Label_f42aa342-8706-4288-bd11-ebb85995028c_Method=Standard")])
    mail("confidential-protected-document", STAFF, EXT, "Strictly confidential: draft restructuring plan",
         hi + "The draft plan is in the attached document, protected with a password; I will give you the "
         "password by phone." + bye,
         attachments=[locked_docx("plan.docx")])
    raw_mail("confidential-encrypted", "alice@example.ac.uk", "bob@partner.example.com",
             "CONFIDENTIAL: draft restructuring plan", SMIME_HEAD, smime_body("confidential"))
    # -- 3.1 hard negatives: disclaimers, prose and quotations are no marking
    mail("clean-disclaimer-footer", STAFF, EXT, "Visit on Friday",
         hi + "Thanks for the tour yesterday; we will see you again on Friday at 2pm." + bye
         + "\nPRIVATE AND CONFIDENTIAL\nThis e-mail and any attachments are confidential and intended solely for "
         "the addressee. If you have received this e-mail in error, please notify the sender and delete it. "
         "Any unauthorised use, disclosure or copying is strictly prohibited.\n")
    mail("clean-reply-confidential-prose", STAFF, EXT, "Re: Your offer letter",
         hi + "Thank you for letting me know. I'll keep this confidential until the announcement." + bye
         + "\nOn Mon, 2 Mar 2026 at 09:12, Bob Buyer <bob@partner.example.com> wrote:\n"
         "> STRICTLY CONFIDENTIAL\n> The announcement is planned for next month.\n\n"
         "CONFIDENTIALITY NOTICE: This e-mail message, including any attachments, is for the sole use of the "
         "intended recipient(s) and may contain confidential and privileged information. Any unauthorized review, "
         "use, disclosure or distribution is prohibited. If you are not the intended recipient, please contact "
         "the sender by reply e-mail and destroy all copies of the original message.\n")
    # -- 3.1.2, 3.2-3.4 conduct
    mail("abusive-internal", STAFF, INT, "The rota",
         "Carol,\n\nYou are completely useless. Nobody can rely on you for anything." + bye)
    mail("intimidating-external", STAFF, EXT, "Your complaint",
         "Bob,\n\nDrop the complaint now. I know where you live, so watch your back." + bye)
    # -- 3.5 who receives it
    mail("distribution-list", STAFF, "All Staff <all-staff@example.ac.uk>", "Car park closed on Monday",
         "Dear colleagues,\n\nThe car park will be closed on Monday for resurfacing." + bye)
    many = ", ".join(f"guest{i}@firm{i}.example.com" for i in range(12))
    mail("visible-recipients", STAFF, many, "Open day invitation",
         "Dear all,\n\nYou are warmly invited to our open day next month; details will follow." + bye)
    mass = ", ".join(f"guest{i}@firm{i}.example.com" for i in range(60))
    mail("visible-recipients-mass", STAFF, mass, "Newsletter",
         "Dear all,\n\nHere is our spring newsletter." + bye)
    # -- 4.1, 4.2 business mail
    mail("contract-external", STAFF, EXT, "Studio equipment",
         hi + "Thanks for the revised quotation. Please go ahead with the order as discussed and let us know "
         "the delivery date." + bye)
    mail("student-contract-external", STUDENT, EXT, "Band booking",
         "Hi Bob,\n\nWe accept your quotation for the gig and are happy to proceed on this basis.\n\nThanks,\nSam\n")
    mail("figure-unworded-external", STAFF, EXT, "Catering for the open day",
         hi + "The catering bill for the open day came to £1,250 in the end." + bye)
    mail("figure-mismatch-external", STAFF, EXT, "Room hire",
         hi + "For your records, the room hire comes to £1,250 (one thousand two hundred pounds) for the day." + bye)
    # -- 5.1 attachments (no antivirus needed)
    mail("executable-attachment", STAFF, EXT, "The installer",
         hi + "Here is the installer I mentioned." + bye,
         attachments=[("setup.exe", pe(), "application/octet-stream")])
    mail("script-attachment", STAFF, EXT, "Invoice",
         hi + "See attached." + bye,
         attachments=[("invoice.js", b"WScript.Echo('hello');\n", "application/octet-stream")])
    mail("disguised-attachment", STAFF, EXT, "Report",
         hi + "The report is attached." + bye,
         attachments=[("report.pdf", samples.elf(), "application/pdf")])
    mail("disk-image-attachment", STAFF, EXT, "Photos",
         hi + "The photos are in the attached image." + bye,
         attachments=[("photos.iso", samples.iso(), "application/octet-stream")])
    mail("macro-attachment", STAFF, EXT, "Workbook",
         hi + "The workbook is attached." + bye,
         attachments=[("book.xlsm", samples.macro_xlsm(), "application/vnd.ms-excel.sheet.macroEnabled.12")])
    mail("dde-attachment", STAFF, INT, "Invitation",
         "Hi Carol,\n\nThe invitation is attached." + bye,
         attachments=[("invite.docx", samples.dde_docx(), DOCX)])
    mail("encrypted-document-external", STAFF, EXT, "Your records",
         hi + "The document is attached, protected with a password as our policy asks; I will give you the "
         "password by phone." + bye,
         attachments=[locked_docx("records.docx")])
    raw_mail("malformed-base64", "alice@example.ac.uk", "bob@partner.example.com", "Notes",
             'Content-Type: multipart/mixed; boundary="b1"\r\n',
             "--b1\r\nContent-Type: text/plain\r\n\r\nNotes attached.\r\n"
             "--b1\r\nContent-Type: application/octet-stream; name=notes.bin\r\n"
             "Content-Disposition: attachment; filename=notes.bin\r\nContent-Transfer-Encoding: base64\r\n\r\n"
             "!!!! this is not base64 at all ****\r\n--b1--\r\n")
    deep = samples.nested(40).split(b"\r\nMIME-Version: 1.0\r\n", 1)[1].decode()
    deep_head, _, deep_body = deep.partition("\r\n\r\n")
    raw_mail("too-deep", "alice@example.ac.uk", "carol@example.ac.uk", "Nested", deep_head + "\r\n", deep_body)
    # -- 5.2, 5.3 personal data
    pd_body = (hi + f"For the payroll change, her National Insurance number: {nino}. "
               "Please update the record today." + bye)
    mail("personal-data-external", STAFF, EXT, "Payroll change", pd_body)
    mail("personal-data-mixed", STAFF, f"{EXT}, {INT}", "Payroll change", pd_body)
    mail("personal-data-internal", STAFF, INT, "Clinic referral",
         f"Hi Carol,\n\nFor the referral, the student's NHS number: {nhs[:3]} {nhs[3:6]} {nhs[6:]}." + bye)
    mail("student-number-external", STAFF, EXT, "Placement",
         hi + "For the placement paperwork, her student number is S1234567." + bye)  # the policy's custom detector
    mail("special-category-external", STAFF, EXT, "Exam arrangements",
         hi + "Mr Patel has been diagnosed with epilepsy and will need a separate room for the exam." + bye)
    mail("credential-external", STAFF, EXT, "Portal access",
         hi + "You can log in to the portal now. Username: bob.buyer, password: Tr0ub4dor&3x-Q9" + bye)
    contacts = "\n".join(f"Person {i}, person{i}@home{i}.example.net" for i in range(12))
    mail("bulk-contacts-external", STAFF, EXT, "Mailing list",
         hi + "Here is the list of people who signed up:\n\n" + contacts + bye)
    mail("weak-protection-external", STAFF, EXT, "Payroll form",
         hi + f"The form is attached (PDF, restricted). National Insurance number: {nino}." + bye,
         attachments=[("form.pdf", samples.pdf(user="", owner="owner-secret"), "application/pdf")])
    mail("personal-data-encrypted-7z", STAFF, EXT, "Payroll records",
         hi + "The records are in the attached archive; the password follows by phone." + bye,
         attachments=[("records.7z", samples.sevenzip_of(
             {"records.txt": f"National Insurance number: {nino}\n".encode()}, password="Correct-Horse-7"),
             "application/x-7z-compressed")])
    raw_mail("smime-encrypted", "alice@example.ac.uk", "bob@partner.example.com", "Payroll", SMIME_HEAD,
             smime_body("smime"))
    # -- 5.4 desktop clients
    mail("desktop-client", STAFF, EXT, "Timetable",
         hi + "The new timetable is on the course pages." + bye, headers=[("X-Mailer", "Microsoft Outlook 16.0")])

    # -- clamd section: needs a clamd with the test signatures
    mail("eicar-attachment", STAFF, EXT, "Readme",
         hi + "The readme is attached." + bye, attachments=[("readme.txt", samples.EICAR, "application/octet-stream")])
    mail("clam-in-zip", STAFF, EXT, "Setup files",
         hi + "The setup files are attached." + bye,
         attachments=[("setup.zip", samples.zip_of({"clam.exe": samples.testfile("clam.exe")}), "application/zip")])
    mail("clean-with-antivirus", STAFF, EXT, "Minutes",
         hi + "The minutes of Tuesday's meeting are attached." + bye,
         attachments=[("minutes.txt", b"Present: Alice, Bob\nActions: none\n", "text/plain")])


if __name__ == "__main__":
    ONLY.update(sys.argv[1:])
    main()
