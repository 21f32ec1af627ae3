"""Small attachment samples, built in memory (see README.md in this folder for each one's source)."""

from __future__ import annotations

import base64
import io
import struct
import tarfile
import zipfile
import zlib
from email.message import EmailMessage
from pathlib import Path

HERE = Path(__file__).resolve().parent
TESTFILES = Path("/usr/share/clamav-testfiles")
EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
MSI_CLSID = bytes.fromhex("84100c0000000000c000000000000046")  # {000C1084-0000-0000-C000-000000000046}


def testfile(name: str) -> bytes:
    return (TESTFILES / name).read_bytes()


def macro_xlsm() -> bytes:
    return (HERE / "macro.xlsm").read_bytes()


def vba_project() -> bytes:
    """An OLE2 file holding a VBA project (the xlsm's xl/vbaProject.bin)."""
    with zipfile.ZipFile(io.BytesIO(macro_xlsm())) as zf:
        return zf.read("xl/vbaProject.bin")


def msi() -> bytes:
    """An OLE2 file whose root CLSID is the Windows Installer package's."""
    data = bytearray(vba_project())
    first_dir = struct.unpack("<I", data[0x30:0x34])[0]
    root = (first_dir + 1) * 512
    data[root + 0x50:root + 0x60] = MSI_CLSID
    return bytes(data)


def elf() -> bytes:
    header = b"\x7fELF\x02\x01\x01" + b"\0" * 9
    return header + struct.pack("<HHIQQQIHHHHHH", 2, 0x3E, 1, 0x400078, 64, 0, 0, 64, 56, 1, 0, 0, 0)


def macho() -> bytes:
    return struct.pack("<IiiIIII", 0xFEEDFACF, 0x01000007, 3, 2, 0, 0, 0) + b"\0" * 64


def macho_fat() -> bytes:
    """A Mach-O universal ("fat") binary: two architectures (i386, x86_64), each a thin Mach-O header."""
    thin32 = struct.pack("<IiiIIII", 0xFEEDFACE, 7, 3, 2, 0, 0, 0)
    thin64 = macho()
    head = struct.pack(">II", 0xCAFEBABE, 2)
    head += struct.pack(">iiIII", 7, 3, 4096, len(thin32), 12) + struct.pack(">iiIII", 0x01000007, 3, 8192, len(thin64), 12)
    return head.ljust(4096, b"\0") + thin32.ljust(4096, b"\0") + thin64


def java_class() -> bytes:
    """A Java class file's header: the same CAFEBABE magic, then minor 0 and major 52 (Java 8)."""
    return struct.pack(">IHHH", 0xCAFEBABE, 0, 52, 16) + b"\0" * 200


def dos_mz() -> bytes:
    """A DOS-only MZ executable (no PE header): a 32-byte header, then code that prints and exits."""
    code = bytes.fromhex("b409ba0d00cd21b8004ccd21") + b"hello$"
    size = 32 + len(code)
    header = struct.pack("<2s13H", b"MZ", size % 512, (size + 511) // 512, 0, 2, 0, 0xFFFF, 0, 0xB8, 0, 0, 0, 0x1C, 0)
    return header.ljust(32, b"\0") + code + b"\0" * 32


def qcow2() -> bytes:
    """A QEMU qcow2 disk image header (1 GiB virtual size), written from the published layout."""
    return struct.pack(">4sIQIIQ", b"QFI\xfb", 3, 0, 0, 16, 1 << 30).ljust(512, b"\0")


def lnk() -> bytes:
    return struct.pack("<I", 0x4C) + bytes.fromhex("0114020000000000c000000000000046") + b"\0" * 56


def iso() -> bytes:
    data = bytearray(0x8800)
    data[0x8000:0x8006] = b"\x01CD001"
    return bytes(data)


def vhdx() -> bytes:
    return b"vhdxfile" + b"\0" * 1016


def vhd() -> bytes:
    return b"\0" * 1024 + b"conectix" + b"\0" * 504


def dmg() -> bytes:
    return b"\0" * 1024 + b"koly" + b"\0" * 508


def mbr_image() -> bytes:
    data = bytearray(2048)
    data[446 + 4] = 0x83
    data[446 + 8:446 + 16] = struct.pack("<II", 2048, 4096)
    data[510:512] = b"\x55\xaa"
    return bytes(data)


def zip_of(members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def encrypted_zip(members: dict[str, bytes]) -> bytes:
    """A zip whose members carry the 'encrypted' flag (bit 0); stdlib cannot write real ZipCrypto."""
    data = bytearray(zip_of(members, zipfile.ZIP_STORED))
    pos = 0
    while (pos := data.find(b"PK\x03\x04", pos)) >= 0:
        data[pos + 6] |= 1
        pos += 4
    pos = 0
    while (pos := data.find(b"PK\x01\x02", pos)) >= 0:
        data[pos + 8] |= 1
        pos += 4
    return bytes(data)


def zipcrypto() -> bytes:
    """A real ZipCrypto zip (``zip -P s3cret``) of one text member, figures.txt (README.md: the recipe)."""
    return (HERE / "zipcrypto.zip").read_bytes()


def sevenzip_of(members: dict[str, bytes], password: str | None = None, header_encryption: bool = False) -> bytes:
    import py7zr

    buf = io.BytesIO()
    with py7zr.SevenZipFile(buf, "w", password=password, header_encryption=header_encryption) as zf:
        for name, data in members.items():
            zf.writestr(data, name)
    return buf.getvalue()


def rar4_of(members: dict[str, bytes], encrypted: bool = False) -> bytes:
    """A RAR 4 archive of stored members, written from the format's published layout (no rar tool here)."""
    def block(kind: int, flags: int, body: bytes) -> bytes:
        rest = struct.pack("<BHH", kind, flags, 7 + len(body)) + body
        return struct.pack("<H", zlib.crc32(rest) & 0xFFFF) + rest

    out = b"Rar!\x1a\x07\x00" + block(0x73, 0, b"\0" * 6)
    for name, data in members.items():
        raw_name = name.encode()
        head = struct.pack("<IIBIIBBHI", len(data), len(data), 2, zlib.crc32(data), 0x5A000000, 20, 0x30,
                           len(raw_name), 0x20) + raw_name
        out += block(0x74, 0x8000 | (0x04 if encrypted else 0), head) + data
    return out + block(0x7B, 0x4000, b"")


def tar_gz_of(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def docx(paragraph: str = "hello") -> bytes:
    """A minimal Word document (OOXML) with one paragraph."""
    ns = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
    return zip_of({
        "[Content_Types].xml": '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/'
                               'package/2006/content-types"><Default Extension="rels" ContentType="application/'
                               'vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" '
                               'ContentType="application/xml"/><Override PartName="/word/document.xml" ContentType='
                               '"application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/>'
                               '</Types>',
        "_rels/.rels": '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/'
                       'package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/'
                       'officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/></Relationships>',
        "word/document.xml": f'<?xml version="1.0" encoding="UTF-8"?><w:document xmlns:w="{ns}"><w:body><w:p><w:r>'
                             f'<w:t>{paragraph}</w:t></w:r></w:p></w:body></w:document>',
    })


def zipfile_types() -> str:
    """A [Content_Types].xml naming word/document.xml the main part of a Word document."""
    return ('<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Override PartName="/word/document.xml" ContentType="application/'
            'vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>')


def dde_docx() -> bytes:
    return zip_of({
        "[Content_Types].xml": '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/'
                               'content-types"><Override PartName="/word/document.xml" ContentType="application/'
                               'vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>',
        "word/document.xml": '<?xml version="1.0"?><w:document xmlns:w="http://schemas.openxmlformats.org/'
                             'wordprocessingml/2006/main"><w:body><w:p><w:fldSimple w:instr=\'DDEAUTO '
                             'c:\\\\windows\\\\system32\\\\cmd.exe "/k calc.exe"\'><w:r><w:t>x</w:t></w:r>'
                             '</w:fldSimple></w:p></w:body></w:document>',
    })


def encrypted_office(password: str) -> bytes:
    from msoffcrypto.format.ooxml import OOXMLFile

    out = io.BytesIO()
    OOXMLFile(io.BytesIO(docx())).encrypt(password, out)
    return out.getvalue()


def pdf(user: str | None = None, owner: str | None = None) -> bytes:
    import pypdf

    writer = pypdf.PdfWriter()
    writer.add_blank_page(200, 200)
    if user is not None:
        writer.encrypt(user_password=user, owner_password=owner, algorithm="AES-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def message(attachments=(), body: str = "Hello,\n\nthe file is attached.\n", subject: str = "Files") -> bytes:
    """A multipart message with ``attachments`` [(filename, bytes, mime)]."""
    msg = EmailMessage()
    msg["From"] = "alice@example.ac.uk"
    msg["To"] = "bob@example.org"
    msg["Subject"] = subject
    msg["Message-ID"] = "<samples@example.ac.uk>"
    msg.set_content(body)
    for filename, data, mime in attachments:
        maintype, _, subtype = mime.partition("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return msg.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def forwarded_base64(inner: bytes) -> bytes:
    """``inner`` attached as message/rfc822, transfer-encoded base64 (RFC 2046 forbids it; senders do it)."""
    head = (b"From: alice@example.ac.uk\r\nTo: bob@example.org\r\nSubject: Fwd\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: multipart/mixed; boundary=\"outer\"\r\n\r\n--outer\r\nContent-Type: text/plain\r\n\r\n"
            b"see attached\r\n--outer\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n")
    return head + base64.encodebytes(inner).replace(b"\n", b"\r\n") + b"--outer--\r\n"


def nested(depth: int) -> bytes:
    """A message whose multiparts nest ``depth`` deep."""
    body = b"Content-Type: text/plain\r\n\r\ninnermost\r\n"
    for level in range(depth):
        b = f"b{level}".encode()
        body = (b"Content-Type: multipart/mixed; boundary=\"" + b + b"\"\r\n\r\n--" + b + b"\r\n" + body
                + b"\r\n--" + b + b"--\r\n")
    return b"From: a@example.org\r\nTo: b@example.org\r\nSubject: deep\r\nMIME-Version: 1.0\r\n" + body


def many_parts(count: int) -> bytes:
    parts = b"".join(b"--sep\r\nContent-Type: text/plain\r\n\r\npart %d\r\n" % i for i in range(count))
    return (b"From: a@example.org\r\nTo: b@example.org\r\nSubject: many\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: multipart/mixed; boundary=\"sep\"\r\n\r\n" + parts + b"--sep--\r\n")


def xlm_xlsm() -> bytes:
    """An OOXML workbook with an Excel 4 (XLM) macro sheet."""
    return zip_of({
        "[Content_Types].xml": '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/'
                               'content-types"><Override PartName="/xl/workbook.xml" ContentType="application/'
                               'vnd.ms-excel.sheet.macroEnabled.main+xml"/><Override PartName="/xl/macrosheets/'
                               'sheet1.xml" ContentType="application/vnd.ms-excel.macrosheet+xml"/></Types>',
        "xl/workbook.xml": "<workbook/>",
        "xl/macrosheets/sheet1.xml": '<?xml version="1.0"?><xm:macrosheet xmlns:xm="http://schemas.microsoft.com/'
                                     'office/excel/2006/main"><sheetData><row r="1"><c r="A1"><f>HALT()</f></c>'
                                     '</row></sheetData></xm:macrosheet>',
    })
