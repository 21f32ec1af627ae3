"""True file types of attachments and archive members (clause 5.1).

Every leaf part and archive member is typed from its bytes and its name:
exact checks of the signatures that matter here (PE and DOS MZ, ELF, Mach-O
thin and universal, MSI, LNK, ISO, VHD(X), DMG, MBR, scripts) first, then
libmagic (python-magic, one ``magic.Magic`` per thread: it is not
thread-safe) on the first 8 KiB of every attachment and archive member --
a second opinion on executables and disk images, and the judge of rule 2
below -- except where its answer could change no finding: content the
exact checks already found dangerous, and text (UTF-8/16, no control bytes)
under a name that claims no specific format. libmagic's slow text tests are
off; it still costs 0.1-0.8 ms a call, the exact checks microseconds.
Message bodies (text parts without a name) get only the exact executable
and disk image checks. Findings (``where`` is the part's label):

- ``executable`` pe | elf | macho | msi: by content (high confidence; ``pe``
  is any MZ executable, PE or DOS-only; ``macho`` thin or universal, told
  from a Java class, which shares the universal magic, as libmagic does: at
  most 19 architectures), or by an executable extension alone (``.exe .dll .scr .com .cpl .pif .sys .msi .msp
  .so .dylib``; medium).
- ``script`` js | vbs | ps1 | hta | bat | cmd | lnk | jar | wsf | sh: by
  extension (Windows runs these by name: high), and by content where content
  says so reliably: a ``#!`` line (sh), a shell link header (lnk), a zip with
  a Java manifest or classes (jar), ``<HTA:APPLICATION`` (hta), ``<job>`` with
  ``<script>`` (wsf), a DOS batch file (bat). Plain JavaScript, VBScript and
  PowerShell have no reliable content signature: extension only. Content
  checks do not apply to message bodies (a body may quote a script).
- ``disk_image`` iso | img | vhd | vhdx | dmg: by content (ISO 9660
  ``CD001``, ``vhdxfile``, ``conectix``, a DMG ``koly`` trailer, an MBR
  partitioned image; libmagic: a QEMU qcow image is ``img``) or extension.
- ``macro`` vba | xlm: oletools olevba on Office documents (OLE2 and OOXML),
  and Excel 4 macro sheets (``xl/macrosheets/``) in OOXML workbooks.
- ``dde``: DDE/DDEAUTO fields in Word and RTF documents (oletools msodde), DDE links
  and ``cmd|'...'!A1`` formulas in Excel workbooks, and CSV cells starting
  ``=cmd|`` and the like.
- ``type_mismatch`` (type: the real type) where the name or the declared
  type lies:

  1. the content is an executable, script (by content) or disk image, and
     neither the extension nor the declared type says so (``invoice.pdf``
     that is a PE file: ``executable pe`` *and* ``type_mismatch pe``);
  2. the extension names a specific format -- a document (pdf, doc, docx,
     xls, xlsx, ppt, pptx, rtf, odt, ods, odp), an image (jpg, jpeg, png,
     gif, bmp, tif, tiff), an archive (zip, 7z, rar, gz) -- and libmagic is
     sure the bytes are another format (``report.pdf`` that is a zip).

  3. the extension names a document format (pdf, rtf, doc, xls, ppt, the
     OOXML and ODF names) and the bytes do not even start like one while
     libmagic has no better answer: ``type_mismatch data``, or
     ``type_mismatch text`` for text -- a text file called ``staff.docx`` is
     named to look like something else, and the shipped policy rejects
     type_mismatch: harsh for an innocent rename, but the name lies and the
     sender can send it under its own name. Text called ``.doc``, ``.xls``
     or ``.rtf`` is *not* a mismatch: Office opens text under those names by
     design (CSV and HTML "Excel" exports, Word's HTML ``.doc``), and such
     files are common. Either way their text is extracted and judged
     (:func:`relay.extract.documents.guess`).

  Not mismatches: generic names (``.txt``, ``.dat``, ``.bin``, no extension)
  over harmless content -- a ``.txt`` that is a zip is fine, its members are
  listed and judged on their own; libmagic answers that mean "not sure"
  (``application/octet-stream``, plain text for a text format); an encrypted
  OOXML file (an OLE2 container) called ``.docx``; declared types alone
  (mail clients send ``application/octet-stream`` for anything).
"""

from __future__ import annotations

import functools
import io
import re
import threading
import warnings
import zipfile
from collections.abc import Sequence

import magic

from relay.extract.plain import is_text
from relay.findings import Confidence, Finding
from relay.message import ParseLimits, ParsedMessage, Part
from relay.scanners import run_sized

HEAD = 8 * 1024
_local = threading.local()

CFB = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_MSI_CLSIDS = {"000C1084-0000-0000-C000-000000000046", "000C1086-0000-0000-C000-000000000046",
               "000C1082-0000-0000-C000-000000000046"}
_LNK = b"L\x00\x00\x00\x01\x14\x02\x00\x00\x00\x00\x00\xc0\x00\x00\x00\x00\x00\x00F"
_MACHO = (b"\xfe\xed\xfa\xce", b"\xfe\xed\xfa\xcf", b"\xce\xfa\xed\xfe", b"\xcf\xfa\xed\xfe")
_MACHO_FAT = (b"\xca\xfe\xba\xbe", b"\xca\xfe\xba\xbf")   # universal (32/64-bit offsets), big-endian
_FAT_MAX_ARCHS = 20   # libmagic's bound: more "architectures" is a Java class's version number
# libmagic's answers that name a dangerous type, for what the exact checks miss. Not
# application/x-dosexec (with its text tests off libmagic says so of any buffer starting "MZ", text
# included: _mz decides), nor its ELF types (it needs the same four bytes as the exact check).
_MAGIC_EXEC = {"application/vnd.microsoft.portable-executable": "pe", "application/x-mach-binary": "macho",
               "application/x-msi": "msi"}
_MAGIC_IMAGE = {"application/x-iso9660-image": "iso", "application/x-qemu-disk": "img"}   # QEMU qcow/qcow2

EXEC_EXT = {"exe": "pe", "dll": "pe", "scr": "pe", "com": "pe", "cpl": "pe", "pif": "pe", "sys": "pe",
            "msi": "msi", "msp": "msi", "so": "elf", "dylib": "macho"}
SCRIPT_EXT = {"js": "js", "jse": "js", "vbs": "vbs", "vbe": "vbs", "ps1": "ps1", "psm1": "ps1", "psd1": "ps1",
              "hta": "hta", "bat": "bat", "cmd": "cmd", "lnk": "lnk", "jar": "jar", "wsf": "wsf", "wsh": "wsf",
              "sh": "sh", "bash": "sh", "zsh": "sh", "ksh": "sh"}
IMAGE_EXT = {"iso": "iso", "img": "img", "ima": "img", "vhd": "vhd", "vhdx": "vhdx", "dmg": "dmg"}

_OLE_MIMES = ("application/x-ole-storage", "application/msword", "application/vnd.ms-", "application/cdfv2",
              "application/encrypted")  # libmagic: encrypted OLE2 / OOXML
_OOXML = ("application/vnd.openxmlformats-officedocument.", "application/zip", "application/vnd.ms-",
          *_OLE_MIMES)
_ODF = ("application/vnd.oasis.opendocument.", "application/zip")
# extension -> libmagic MIME prefixes that fit it (rule 2 of the docstring)
SPECIFIC = {
    "pdf": ("application/pdf",),
    "doc": _OLE_MIMES, "xls": _OLE_MIMES, "ppt": _OLE_MIMES,
    "docx": _OOXML, "xlsx": _OOXML, "pptx": _OOXML, "docm": _OOXML, "xlsm": _OOXML, "pptm": _OOXML,
    "odt": _ODF, "ods": _ODF, "odp": _ODF,
    "rtf": ("text/rtf", "application/rtf"),
    "jpg": ("image/jpeg",), "jpeg": ("image/jpeg",), "png": ("image/png",), "gif": ("image/gif",),
    "bmp": ("image/bmp", "image/x-ms-bmp"), "tif": ("image/tiff",), "tiff": ("image/tiff",),
    "zip": ("application/zip", "application/x-zip"), "7z": ("application/x-7z-compressed",),
    "rar": ("application/x-rar", "application/vnd.rar"), "gz": ("application/gzip", "application/x-gzip"),
}
# names that claim a document format (rule 3 of the docstring), and those Office opens text under
DOCUMENT_EXT = frozenset(("pdf", "rtf", "doc", "xls", "ppt", "docx", "xlsx", "pptx", "docm", "xlsm", "pptm",
                          "odt", "ods", "odp"))
_TEXT_OPENS = frozenset(("doc", "xls", "rtf"))
_UNSURE = ("application/octet-stream", "inode/x-empty", "application/x-empty", "text/plain")
_SHORT = {"application/pdf": "pdf", "application/zip": "zip", "application/x-7z-compressed": "7z",
          "application/gzip": "gzip", "application/x-ole-storage": "ole", "text/html": "html",
          "image/jpeg": "jpeg", "image/png": "png", "text/rtf": "rtf"}


# libmagic's text tests (ASCII/encoding analysis) cost ~15 ms a buffer and only ever say
# "some text": off. Text then types as application/octet-stream, which counts as "not sure".
_MAGIC_FLAGS = 0x020000 | 0x200000   # MAGIC_NO_CHECK_TEXT | MAGIC_NO_CHECK_ENCODING


def _magic() -> magic.Magic:
    m = getattr(_local, "magic", None)
    if m is None:
        m = magic.Magic(mime=True)
        magic.magic_setflags(m.cookie, m.flags | _MAGIC_FLAGS)
        _local.magic = m
    return m


def mime_of(data: bytes) -> str:
    try:
        return _magic().from_buffer(data[:HEAD]).lower()
    except magic.MagicException:
        return "application/octet-stream"


def _short(mime: str) -> str:
    return _SHORT.get(mime) or mime.rpartition("/")[2].removeprefix("x-")


def _cfb_clsid(data: bytes) -> str:
    import olefile
    try:
        with olefile.OleFileIO(data) as ole:
            return (ole.root.clsid or "").upper()
    except Exception:  # noqa: BLE001 - a broken container is just not an MSI
        return ""


def _mz(data: bytes) -> bool:
    """An MZ executable's header (PE, or DOS-only): a sane DOS header, not text that starts "MZ"."""
    if data[:2] != b"MZ" or len(data) < 64:
        return False
    lfanew = int.from_bytes(data[60:64], "little")
    if data[lfanew:lfanew + 4] == b"PE\0\0":
        return True
    last_page, pages, _, header_paras = (int.from_bytes(data[i:i + 2], "little") for i in (2, 4, 6, 8))
    relocations_at = int.from_bytes(data[0x18:0x1A], "little")
    return (last_page < 512 and pages >= 1 and header_paras >= 2 and pages * 512 >= header_paras * 16
            and 0x1C <= relocations_at <= max(header_paras * 16, 0x40))


def _macho_fat(data: bytes) -> bool:
    return data[:4] in _MACHO_FAT and 0 < int.from_bytes(data[4:8], "big") < _FAT_MAX_ARCHS


def executable(data: bytes) -> str:
    """pe, elf, macho, msi or "" from the bytes."""
    if _mz(data):
        return "pe"
    if data[:4] == b"\x7fELF":
        return "elf"
    if data[:4] in _MACHO or _macho_fat(data):
        return "macho"
    if data[:8] == CFB and _cfb_clsid(data) in _MSI_CLSIDS:
        return "msi"
    return ""


def disk_image(data: bytes) -> str:
    if any(data[o:o + 5] == b"CD001" for o in (0x8001, 0x8801, 0x9001)):
        return "iso"
    if data[:8] == b"vhdxfile":
        return "vhdx"
    if data[:8] == b"conectix" or data[-512:-504] == b"conectix":
        return "vhd"
    if len(data) >= 1024 and data[-512:-508] == b"koly":
        return "dmg"
    if len(data) >= 512 and data[510:512] == b"\x55\xaa" and any(
            data[446 + 16 * i + 4] not in (0, 0xEE) and data[446 + 16 * i] in (0, 0x80) for i in range(4)) \
            and not data[:3] in (b"\xeb\x3c\x90", b"\xeb\x58\x90"):
        return "img"
    return ""


_LIMITS = ParseLimits()   # the settings' defaults, for callers that pass none


def _zip_names(data: bytes, limits: ParseLimits = _LIMITS) -> list[str]:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            return zf.namelist()[:limits.max_archive_members]
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return []


_BATCH = re.compile(rb"\s*@echo\s+off\b", re.I)


def script(data: bytes, names: list[str] | None = None) -> str:
    head = data[:HEAD]
    if head.startswith(_LNK):
        return "lnk"
    if head.startswith(b"#!"):
        return "sh"
    if head.startswith(b"PK\x03\x04"):
        names = _zip_names(data) if names is None else names
        if "META-INF/MANIFEST.MF" in names or any(n.endswith(".class") for n in names):
            return "jar"
        return ""
    low = head.lower()
    if b"<hta:application" in low:
        return "hta"
    if b"<job" in low and b"<script" in low:
        return "wsf"
    if _BATCH.match(head):
        return "bat"
    return ""


def _ooxml(names: list[str]) -> bool:
    return "[Content_Types].xml" in names


_import_lock = threading.Lock()


def _oletools():
    """olevba and msodde, imported once (their pyparsing use warns of deprecations at import)."""
    with _import_lock:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            from oletools import msodde, olevba
    return olevba, msodde


def _zip_has_ole(data: bytes, limits: ParseLimits = _LIMITS) -> bool:
    """Whether some member of the zip ``data`` is an OLE file: the only place olevba looks for
    VBA in a zip (vbaProject.bin, under any name). Unreadable: True (let olevba judge)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            for info in zf.infolist()[:limits.max_archive_members]:
                with zf.open(info) as fh:
                    if fh.read(len(CFB)) == CFB:
                        return True
    except Exception:  # noqa: BLE001 - encrypted members, bad compression...: olevba decides
        return True
    return False


def macros(data: bytes, names: list[str] | None = None, limits: ParseLimits = _LIMITS) -> list[str]:
    """vba and/or xlm: olevba, plus Excel 4 macro sheets in OOXML workbooks (olevba sees those in BIFF only)."""
    olevba = _oletools()[0]
    VBA_Parser = olevba.VBA_Parser  # noqa: N806
    sheets = ["xlm"] if data[:4] == b"PK\x03\x04" and any(
        n.startswith("xl/macrosheets/") for n in (_zip_names(data, limits) if names is None else names)) else []
    if data[:4] == b"PK\x03\x04" and not _zip_has_ole(data, limits):
        return sheets       # no OLE member: nothing for olevba to find (and 1 ms saved per document)
    try:
        parser = VBA_Parser("attachment", data=data)
    except Exception:  # noqa: BLE001 - not an Office file after all, or too broken to hold macros
        return sheets
    try:
        if parser.type == olevba.TYPE_TEXT:
            # not OLE, OOXML, Word 2003 XML, MHTML or another container olevba knows: it takes
            # the bytes for VBA source text and "detects" macros in any .xml or .doc of text
            return sheets
        out = sheets
        if parser.detect_vba_macros():
            out.append("vba")
        try:
            if "xlm" not in out and parser.detect_xlm_macros():
                out.append("xlm")
        except Exception:  # noqa: BLE001 - XLM detection is best effort
            pass
        return out
    except Exception:  # noqa: BLE001
        return sheets
    finally:
        parser.close()


_DDE_FORMULA = re.compile(rb"<f>[^<]*\w\|\s*'[^<]*'![^<]*</f>", re.I)
_DDE_CSV = re.compile(rb"(?m)^[\"']?[=+\-@][^\r\n|]{0,40}\|")


# A Word field is either <w:fldSimple w:instr="..."> or <w:instrText> runs; element names are
# literal in the XML (no entity can spell them), in UTF-8 or UTF-16.
_FIELD_MARKUP = re.compile(b"|".join(re.escape(name.encode(codec)) for name in ("instrText", "fldSimple")
                                     for codec in ("utf-8", "utf-16-le", "utf-16-be")))


_BOMS = (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")


def _looks_like_xml(head: bytes) -> bool:
    """Whether a member starting with ``head`` could parse as XML (msodde skips what cannot:
    pictures, OLE objects), in UTF-8 or UTF-16, with or without a byte order mark."""
    for bom in _BOMS:
        if head.startswith(bom):
            head = head[len(bom):]
            break
    return head.replace(b"\0", b"").lstrip(b" \t\r\n").startswith(b"<")


def _zip_has_fields(zf: zipfile.ZipFile, limits: ParseLimits) -> bool:
    """Whether any member msodde would parse holds field markup. Past ``max_decoded_bytes``
    of members read: True (msodde decides)."""
    budget, tail = limits.max_decoded_bytes, 20
    for info in zf.infolist()[:limits.max_archive_members]:
        with zf.open(info) as fh:
            chunk = fh.read(256)
            if not _looks_like_xml(chunk):
                continue
            carry = b""
            while chunk:
                if _FIELD_MARKUP.search(carry + chunk):
                    return True
                carry = chunk[-tail:]
                budget -= len(chunk)
                if budget <= 0:
                    return True
                chunk = fh.read(1024 * 1024)
    return False


def dde(data: bytes, ext: str, limits: ParseLimits = _LIMITS) -> bool:
    """DDE/DDEAUTO fields (not other fields: page numbers, hyperlinks, tables of contents)."""
    msodde = _oletools()[1]
    try:
        if data[:8] == CFB:
            import olefile
            with olefile.OleFileIO(data) as ole:
                if ole.exists("WordDocument"):
                    return bool(msodde.process_doc(ole).strip())
            return False
        if data[:4] == b"PK\x03\x04":
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                names = zf.namelist()
                if any(n.startswith("word/") for n in names):
                    if not _zip_has_fields(zf, limits):
                        return False
                    return bool(msodde.process_docx(io.BytesIO(data), msodde.FIELD_FILTER_DDE).strip())
                for name in names:
                    if name.startswith("xl/externalLinks/") or name.startswith("xl/worksheets/"):
                        with zf.open(name) as fh:
                            xml = fh.read(4 * 1024 * 1024)
                        if b"<ddeLink" in xml or _DDE_FORMULA.search(xml):
                            return True
            return False
        if data[:5] == b"{\\rtf":
            return bool(msodde.process_rtf(io.BytesIO(data), msodde.FIELD_FILTER_DDE).strip())
        if ext == "csv":
            return bool(_DDE_CSV.search(data[:4 * 1024 * 1024]))
    except Exception:  # noqa: BLE001 - a document too broken to parse holds no field we can see
        return False
    return False


def _is_body(part: Part) -> bool:
    return (part.origin == "mime" and not part.filename and part.disposition != "attachment"
            and part.content_type in ("text/plain", "text/html"))


def check_part(part: Part, limits: ParseLimits = _LIMITS) -> list[Finding]:
    """Every file-type finding for one leaf part."""
    data, ext, where = part.payload, part.extension, part.label
    out: list[Finding] = []
    body = _is_body(part)
    declared = part.content_type
    names = _zip_names(data, limits) if data[:4] == b"PK\x03\x04" and not body else []   # the listing, read once

    # the exact checks first, then libmagic on every attachment and archive member, but where its
    # answer could change no finding: content the exact checks found dangerous (rules 2 and 3 judge
    # harmless content only), and text under a name that claims no specific format (every type
    # libmagic is asked about here needs bytes that text does not have: NUL, 0xfe, 0xfb...)
    exe = executable(data) if data else ""
    by_content = script(data, names) if data and not body else ""
    image = disk_image(data) if data else ""
    mime = ""
    if data and not body and not (exe or by_content not in ("", "jar") or image) \
            and (ext in SPECIFIC or not is_text(data)):
        mime = mime_of(data)
        exe, image = _MAGIC_EXEC.get(mime, ""), _MAGIC_IMAGE.get(mime, "")

    if exe:
        out.append(Finding("executable", exe, Confidence.HIGH, 1, where))
    elif ext in EXEC_EXT:
        out.append(Finding("executable", EXEC_EXT[ext], Confidence.MEDIUM, 1, where))

    if ext in SCRIPT_EXT:
        out.append(Finding("script", SCRIPT_EXT[ext], Confidence.HIGH, 1, where))
    elif by_content:
        out.append(Finding("script", by_content, Confidence.HIGH, 1, where))

    if image:
        out.append(Finding("disk_image", image, Confidence.HIGH, 1, where))
    elif ext in IMAGE_EXT:
        out.append(Finding("disk_image", IMAGE_EXT[ext], Confidence.MEDIUM, 1, where))

    if data and not body and (data[:8] == CFB or (data[:4] == b"PK\x03\x04" and _ooxml(names))
                              or ext in ("doc", "docm", "xls", "xlsm", "ppt", "pptm", "xml", "mht")):
        for kind in macros(data, names, limits):
            out.append(Finding("macro", kind, Confidence.HIGH, 1, where))
    if data and not body and dde(data, ext, limits):
        out.append(Finding("dde", "dde", Confidence.HIGH, 1, where))

    real = exe or (by_content if by_content not in ("", "jar") else "") or image
    if real:
        said = EXEC_EXT.get(ext) or SCRIPT_EXT.get(ext) or IMAGE_EXT.get(ext)
        declared_ok = declared not in ("", "text/plain", "application/octet-stream") and _declares(declared, real)
        same = said == real or (real == "pe" and ext in EXEC_EXT) or (real == "bat" and said == "cmd") \
            or (real == "sh" and ext in ("py", "pl", "rb"))
        if not same and not declared_ok:
            out.append(Finding("type_mismatch", real, Confidence.HIGH, 1, where))
    elif ext in SPECIFIC and mime and not mime.startswith(_UNSURE) and not mime.startswith(SPECIFIC[ext]):
        out.append(Finding("type_mismatch", _short(mime), Confidence.HIGH, 1, where))
    elif ext in DOCUMENT_EXT and mime and not _is_document(data, ext):
        text = is_text(data)
        if not (text and ext in _TEXT_OPENS):
            out.append(Finding("type_mismatch", "text" if text else "data", Confidence.HIGH, 1, where))
    return out


def _is_document(data: bytes, ext: str) -> bool:
    """Whether the bytes start the way a document called ``.ext`` does (as text extraction reads them)."""
    if ext == "pdf":
        return b"%PDF-" in data[:1024]
    if ext == "rtf":
        return data[:64].lstrip().startswith(b"{\\rtf")
    return data[:4] == b"PK\x03\x04" or data[:8] == CFB


def _declares(declared: str, real: str) -> bool:
    words = {"pe": ("dosexec", "msdownload", "portable-executable", "executable"), "elf": ("elf", "executable"),
             "macho": ("mach",), "msi": ("msi", "installer"), "iso": ("iso9660",), "sh": ("sh",),
             "lnk": ("shortcut",), "hta": ("hta",), "bat": ("bat",), "wsf": ("wsf",)}
    return any(w in declared for w in words.get(real, (real,)))


def scan_message(message: ParsedMessage, limits: ParseLimits = _LIMITS) -> list[Finding]:
    out: list[Finding] = []
    for part in message.leaves():
        out.extend(check_part(part, limits))
    return out


class FileTypeScanner:
    name = "filetypes"

    def __init__(self, settings=None) -> None:
        # the message model's bounds (archive members, decoded bytes) also bound the zip reads here
        self.limits = ParseLimits.from_settings(settings) if settings is not None else _LIMITS

    async def scan(self, ctx) -> Sequence[Finding]:
        return await run_sized(ctx.message, functools.partial(scan_message, limits=self.limits))

    def scan_sync(self, ctx) -> list[Finding]:
        return scan_message(ctx.message, self.limits)
