"""Archive members, listed and read within bounds.

``list_members(data, budget)`` recognises an archive by its first bytes and
returns its members: zip (stdlib), 7z (py7zr), tar and single-file gzip, bzip2
and xz (stdlib; a compressed tar lists the tar's members), TNEF
``winmail.dat`` (tnefparse) and rar (rarfile; names and sizes, and the bytes
of stored members: decompressing rar needs the non-free unrar tool, so
compressed rar members carry no bytes -- ClamAV reads them).

Zip files that are documents -- OOXML (``[Content_Types].xml``), OpenDocument
(``mimetype`` first) -- are not listed: they are files, judged by their type
(and by ClamAV, which unpacks them itself). Only while every member sits
where such documents keep their parts and none has an active extension
(``.exe``, ``.js``, ...): otherwise the zip is listed like any other.

Bounds (invariant 4), each a problem ``(kind, type)`` rather than an error:

- ``max_archive_members``: members past it are not listed (a zip declaring
  over four times as many, or a 7z with any more, is not read at all: zipfile
  builds every entry first, py7zr extracts at ~1 ms a member);
- ``max_compression_ratio``: a member whose *declared* size is over the ratio
  is not read, and decompression stops as soon as the bytes read go over the
  ratio (past a floor of 1 MiB, below which no ratio can hurt);
- ``max_decoded_bytes``: the message-wide byte budget left, checked against
  declared sizes first and against the bytes actually produced while reading.

Members that need a password are listed with ``encrypted=True`` and no bytes.
Anything the libraries cannot read is a ``malformed`` problem (``bad_archive``).
"""

from __future__ import annotations

import bz2
import io
import logging
import lzma
import os
import tarfile
import zipfile
import zlib
from dataclasses import dataclass

RATIO_FLOOR = 1024 * 1024
# tnefparse warns of every bad checksum in the sender's bytes: nothing to act on, and a log flood
logging.getLogger("tnefparse").setLevel(logging.ERROR)
_READ = 64 * 1024


@dataclass(frozen=True, slots=True)
class Member:
    name: str
    data: bytes = b""
    size: int = -1                 # declared uncompressed size; -1 unknown
    encrypted: bool = False


@dataclass(frozen=True, slots=True)
class Listing:
    format: str                                   # zip, 7z, tar, gzip, bzip2, xz, tnef, rar
    members: tuple[Member, ...] = ()
    problems: tuple[tuple[str, str], ...] = ()    # (kind, type)
    encrypted: bool = False                       # even the member names need a password


@dataclass(slots=True)
class Budget:
    """What reading may still use: members, bytes, and the ratio bound."""

    max_members: int
    max_bytes: int                 # decoded bytes left for the whole message
    max_ratio: int
    used: int = 0

    @property
    def room(self) -> int:
        return max(self.max_bytes - self.used, 0)


class _NamesEncrypted(Exception):
    """A 7z archive whose headers (member names) need the password."""


class _Bound(Exception):
    def __init__(self, type_: str) -> None:
        super().__init__(type_)
        self.type = type_


def sniff(data: bytes, filename: str = "", content_type: str = "") -> str:
    """The archive format of ``data``, or "" if it is not one we list."""
    head = data[:8]
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip"
    if head.startswith(b"7z\xbc\xaf\x27\x1c"):
        return "7z"
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"BZh") and data[3:4].isdigit():
        return "bzip2"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    if head.startswith(b"Rar!\x1a\x07"):
        return "rar"
    if head.startswith(b"\x78\x9f\x3e\x22"):
        return "tnef"
    if len(data) >= 262 and data[257:262] == b"ustar":
        return "tar"
    return ""


# Where the parts of an OOXML or OpenDocument file live; a member anywhere else, or one with an
# active extension, makes the zip an archive to list (a document does not hide an .exe).
_DOCUMENT_PLACES = ("[Content_Types].xml", "_rels/", "docProps/", "customXml/", "word/", "xl/", "ppt/",
                    "mimetype", "META-INF/", "content.xml", "styles.xml", "meta.xml", "settings.xml",
                    "manifest.rdf", "Pictures/", "Thumbnails/", "Configurations2/")
_ACTIVE = frozenset("exe dll scr com cpl pif sys msi msp js jse vbs vbe ps1 psm1 hta bat cmd lnk jar wsf wsh "
                    "sh iso img vhd vhdx dmg".split())


def _is_document_zip(names: list[str]) -> bool:
    if "[Content_Types].xml" not in names[:50] and (not names or names[0] != "mimetype"):
        return False
    return all(n.startswith(_DOCUMENT_PLACES) and n.rpartition(".")[2].lower() not in _ACTIVE for n in names)


def _cap(budget: Budget, compressed: int) -> tuple[int, str]:
    """How many bytes one member may produce, and which bound that is."""
    ratio_cap = max(compressed * budget.max_ratio, RATIO_FLOOR)
    if ratio_cap < budget.room:
        return ratio_cap, "max_compression_ratio"
    return budget.room, "max_decoded_bytes"


def _check_declared(budget: Budget, size: int, compressed: int) -> None:
    if size > RATIO_FLOOR and size > max(compressed, 1) * budget.max_ratio:
        raise _Bound("max_compression_ratio")
    if size > budget.room:
        raise _Bound("max_decoded_bytes")


def _read_capped(stream, budget: Budget, compressed: int) -> bytes:
    cap, bound = _cap(budget, compressed)
    out = bytearray()
    while True:
        chunk = stream.read(_READ)
        if not chunk:
            break
        out += chunk
        if len(out) > cap:
            raise _Bound(bound)
    budget.used += len(out)
    return bytes(out)


# --------------------------------------------------------------------------- formats


def _zip_declared_entries(data: bytes) -> int:
    """The member count in the end-of-central-directory record (0xFFFF: ZIP64, many); -1 if none found."""
    eocd = data.rfind(b"PK\x05\x06", max(len(data) - 65557, 0))
    if eocd < 0 or eocd + 22 > len(data):
        return -1
    return int.from_bytes(data[eocd + 10:eocd + 12], "little")


def _zip(data: bytes, budget: Budget, problems: list) -> list[Member] | None:
    # zipfile reads the whole central directory into objects: refuse absurd counts before it does
    if _zip_declared_entries(data) > 4 * budget.max_members:
        raise _Bound("max_archive_members")
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        infos = zf.infolist()
        if _is_document_zip([i.filename for i in infos]):
            return None
        out = []
        for info in infos:
            if info.is_dir():
                continue
            if len(out) >= budget.max_members:
                problems.append(("limit_exceeded", "max_archive_members"))
                break
            if info.flag_bits & 0x1:
                out.append(Member(info.filename, b"", info.file_size, True))
                continue
            try:
                _check_declared(budget, info.file_size, info.compress_size)
                with zf.open(info) as fh:
                    body = _read_capped(fh, budget, info.compress_size)
            except _Bound as exc:
                problems.append(("limit_exceeded", exc.type))
                body = b""
            except NotImplementedError:  # implode, deflate64...: ClamAV still reads them
                problems.append(("malformed", "unsupported_compression"))
                body = b""
            except (zipfile.BadZipFile, zlib.error, EOFError, lzma.LZMAError, OSError):
                problems.append(("malformed", "bad_archive"))
                body = b""
            out.append(Member(info.filename, body, info.file_size))
        return out


class _CappedIO:
    """A py7zr writer that stops decompression once all members together pass the cap."""

    def __init__(self, shared: list[int], bound: str) -> None:
        self.shared, self.bound, self.buf, self.n = shared, bound, io.BytesIO(), 0  # shared: [bytes so far, cap]

    def write(self, s) -> int:
        self.shared[0] += len(s)
        if self.shared[0] > self.shared[1]:
            raise _Bound(self.bound)
        self.n += len(s)
        return self.buf.write(s)

    def read(self, size=None) -> bytes:
        return self.buf.read(size)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.buf.seek(offset, whence)

    def flush(self) -> None:
        pass

    def size(self) -> int:
        return self.n

    def close(self) -> None:
        pass


def _7z(data: bytes, budget: Budget, problems: list) -> list[Member]:
    import py7zr
    import py7zr.exceptions
    import py7zr.io

    try:
        zf = py7zr.SevenZipFile(io.BytesIO(data))
    except py7zr.exceptions.PasswordRequired as exc:
        raise _NamesEncrypted from exc
    with zf:
        infos = [i for i in zf.list() if not i.is_directory]
        encrypted = zf.needs_password()
        if len(infos) > budget.max_members:  # py7zr extracts at ~1 ms a member: not a flood of them
            raise _Bound("max_archive_members")
        if encrypted:
            return [Member(i.filename, b"", i.uncompressed or -1, True) for i in infos]
        total = sum(i.uncompressed or 0 for i in infos)
        _check_declared(budget, total, len(data))
        cap, bound = _cap(budget, len(data))
        writers: dict[str, _CappedIO] = {}
        shared = [0, cap]

        class Factory(py7zr.io.WriterFactory):
            def create(self, filename: str) -> _CappedIO:
                writers[filename] = _CappedIO(shared, bound)
                return writers[filename]

        zf.extract(targets=[i.filename for i in infos], factory=Factory())
        out = []
        for info in infos:
            w = writers.get(info.filename)
            body = w.buf.getvalue() if w else b""
            budget.used += len(body)
            out.append(Member(info.filename, body, info.uncompressed or -1))
        return out


def _decompress(fmt: str, data: bytes, budget: Budget) -> bytes:
    """Decompress a gzip/bzip2/xz stream, stopping as soon as it passes its cap."""
    cap, bound = _cap(budget, len(data))
    d = {"gzip": lambda: zlib.decompressobj(wbits=47), "bzip2": bz2.BZ2Decompressor,
         "xz": lzma.LZMADecompressor}[fmt]()
    out = bytearray()
    src = data
    while not d.eof:
        chunk = d.decompress(src, cap + 1 - len(out))
        src = getattr(d, "unconsumed_tail", b"")
        out += chunk
        if len(out) > cap:
            raise _Bound(bound)
        if not chunk and not src:
            break
    if not d.eof:
        raise ValueError("truncated compressed stream")
    return bytes(out)


def _gzip_name(data: bytes) -> str:
    """The original file name stored in a gzip header (FNAME), if any."""
    if len(data) > 10 and data[3] & 0x08:
        pos = 10
        if data[3] & 0x04:  # FEXTRA
            pos += 2 + int.from_bytes(data[10:12], "little")
        end = data.find(b"\0", pos, pos + 1024)
        if end > pos:
            return data[pos:end].decode("latin-1")
    return ""


def _tar(data: bytes, budget: Budget, problems: list) -> list[Member]:
    out = []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tf:
        for info in tf:
            if not info.isfile():
                continue
            if len(out) >= budget.max_members:
                problems.append(("limit_exceeded", "max_archive_members"))
                break
            if info.size > budget.room:
                problems.append(("limit_exceeded", "max_decoded_bytes"))
                body = b""
            else:
                fh = tf.extractfile(info)
                body = fh.read() if fh else b""
                budget.used += len(body)
            out.append(Member(info.name, body, info.size))
    return out


def _compressed(fmt: str, data: bytes, name: str, budget: Budget, problems: list) -> list[Member]:
    body = _decompress(fmt, data, budget)
    if len(body) >= 262 and body[257:262] == b"ustar":
        return _tar(body, budget, problems)
    inner = _gzip_name(data) if fmt == "gzip" else ""
    if not inner:
        stem, ext = os.path.splitext(name)
        inner = stem if ext.lower() in (".gz", ".bz2", ".xz", ".tgz", ".z") else (name or "data")
    budget.used += len(body)
    return [Member(inner, body, len(body))]


def _tnef(data: bytes, budget: Budget, problems: list) -> list[Member]:
    import tnefparse

    tnef = tnefparse.TNEF(data)
    out = []
    for att in tnef.attachments:
        if len(out) >= budget.max_members:
            problems.append(("limit_exceeded", "max_archive_members"))
            break
        body = bytes(att.data or b"")
        if len(body) > budget.room:
            problems.append(("limit_exceeded", "max_decoded_bytes"))
            body = b""
        budget.used += len(body)
        out.append(Member(att.long_filename() or att.name or "attachment", body, len(body)))
    return out


def _rar(data: bytes, budget: Budget, problems: list) -> list[Member]:
    import rarfile

    with rarfile.RarFile(io.BytesIO(data)) as rf:
        out = []
        for info in rf.infolist():
            if info.is_dir():
                continue
            if len(out) >= budget.max_members:
                problems.append(("limit_exceeded", "max_archive_members"))
                break
            encrypted = bool(info.needs_password())
            body = b""
            if not encrypted and info.compress_type == rarfile.RAR_M0:  # stored: readable without unrar
                _check_declared(budget, info.file_size, info.compress_size)
                with rf.open(info) as fh:
                    body = _read_capped(fh, budget, info.compress_size)
            out.append(Member(info.filename, body, info.file_size, encrypted))
        if rf.needs_password() and not out:
            problems.append(("malformed", "encrypted_archive_headers"))
        return out


_READERS = {"zip": _zip, "7z": _7z, "tar": _tar, "tnef": _tnef, "rar": _rar}


def list_members(data: bytes, budget: Budget, filename: str = "", fmt: str = "") -> Listing | None:
    """The members of the archive ``data``; None if it is not an archive we list."""
    fmt = fmt or sniff(data)
    if not fmt:
        return None
    problems: list[tuple[str, str]] = []
    try:
        if fmt in ("gzip", "bzip2", "xz"):
            members = _compressed(fmt, data, filename, budget, problems)
        else:
            members = _READERS[fmt](data, budget, problems)
    except _Bound as exc:
        return Listing(fmt, (), (("limit_exceeded", exc.type),))
    except _NamesEncrypted:
        return Listing(fmt, (), (), True)
    except MemoryError:
        return Listing(fmt, (), (("limit_exceeded", "max_decoded_bytes"),))
    except Exception:  # noqa: BLE001 - hostile archives make every library raise something
        return Listing(fmt, (), (("malformed", "bad_archive"),))
    if members is None:
        return None
    return Listing(fmt, tuple(members), tuple(dict.fromkeys(problems)))
