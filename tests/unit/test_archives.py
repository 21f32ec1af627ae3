"""relay.archives: formats, bounds, encryption, and hostile input."""

from __future__ import annotations

import bz2
import gzip
import lzma

import pytest

from relay.archives import Budget, list_members, sniff
from tests.data.attachments import samples


def budget(**kw) -> Budget:
    values = {"max_members": 1000, "max_bytes": 100 * 1024 * 1024, "max_ratio": 100}
    values.update(kw)
    return Budget(**values)


@pytest.mark.parametrize(("name", "fmt"), [
    ("clam.zip", "zip"), ("clam.7z", "7z"), ("clam.tar.gz", "gzip"), ("clam.exe.bz2", "bzip2"),
    ("clam.tnef", "tnef"), ("clam.bz2.zip", "zip"),
])
def test_clamav_testfiles_give_back_clam_exe(name, fmt):
    listing = list_members(samples.testfile(name), budget(), name)
    assert listing is not None and listing.format == fmt
    assert [m.data for m in listing.members] == [samples.testfile("clam.exe")]
    assert listing.problems == ()


def test_sniff_rejects_non_archives():
    assert sniff(b"%PDF-1.4") == ""
    assert sniff(samples.testfile("clam.exe")) == ""
    assert list_members(b"hello", budget()) is None


def test_xz_and_named_gzip_single_files():
    xz = list_members(lzma.compress(b"data"), budget(), "notes.txt.xz")
    assert [(m.name, m.data) for m in xz.members] == [("notes.txt", b"data")]
    gz = gzip.compress(b"zzz")
    assert list_members(gz, budget(), "x.gz").members[0].data == b"zzz"


def test_unsupported_zip_compression_is_reported():
    listing = list_members(samples.testfile("clam.impl.zip"), budget())
    assert ("malformed", "unsupported_compression") in listing.problems


def test_declared_ratio_stops_before_reading():
    bomb = samples.zip_of({"z.bin": b"\0" * (30 * 1024 * 1024)})
    b = budget()
    listing = list_members(bomb, b)
    assert listing.problems == (("limit_exceeded", "max_compression_ratio"),)
    assert b.used == 0


@pytest.mark.parametrize("compress", [gzip.compress, bz2.compress, lzma.compress])
def test_stream_bombs_stop_while_decompressing(compress):
    b = budget()
    listing = list_members(compress(b"\0" * (12 * 1024 * 1024)), b, "z")
    assert listing.problems == (("limit_exceeded", "max_compression_ratio"),)
    assert listing.members == ()


def test_7z_bomb_is_refused():
    listing = list_members(samples.sevenzip_of({"z.bin": b"\0" * (8 * 1024 * 1024)}), budget())
    assert ("limit_exceeded", "max_compression_ratio") in listing.problems


def test_byte_budget_is_shared_and_checked():
    data = samples.zip_of({"a.bin": bytes(range(256)) * 1024, "b.bin": bytes(range(256)) * 1024})
    b = budget(max_bytes=300 * 1024)
    listing = list_members(data, b)
    assert ("limit_exceeded", "max_decoded_bytes") in listing.problems
    assert b.used <= 300 * 1024


def test_member_count_bound():
    listing = list_members(samples.zip_of({f"{i}.txt": b"" for i in range(12)}), budget(max_members=5))
    assert len(listing.members) == 5
    assert ("limit_exceeded", "max_archive_members") in listing.problems


def test_encrypted_zip_and_7z_members():
    z = list_members(samples.encrypted_zip({"a.txt": b"x"}), budget())
    assert [(m.name, m.encrypted, m.data) for m in z.members] == [("a.txt", True, b"")]
    s = list_members(samples.sevenzip_of({"b.txt": b"y"}, password="pw"), budget())
    assert [(m.name, m.encrypted) for m in s.members] == [("b.txt", True)]
    h = list_members(samples.sevenzip_of({"c.txt": b"z"}, password="pw", header_encryption=True), budget())
    assert h.encrypted and h.members == ()


def test_document_zips_are_not_archives():
    assert list_members(samples.docx(), budget()) is None
    assert list_members(samples.macro_xlsm(), budget()) is None


def test_truncated_archives_are_malformed():
    for data in (samples.testfile("clam.7z")[:40], samples.testfile("clam.zip")[:60], b"\x1f\x8b\x08\x00broken"):
        listing = list_members(data, budget(), "x")
        assert listing.problems == (("malformed", "bad_archive"),)
        assert listing.members == ()


def test_rar_members_listed_stored_bytes_read_encrypted_flagged():
    listing = list_members(samples.rar4_of({"a.exe": b"MZ stored", "b.txt": b"text"}), budget())
    assert listing.format == "rar"
    assert [(m.name, m.data, m.encrypted) for m in listing.members] == [("a.exe", b"MZ stored", False),
                                                                        ("b.txt", b"text", False)]
    locked = list_members(samples.rar4_of({"a.exe": b"MZ"}, encrypted=True), budget())
    assert [(m.name, m.data, m.encrypted) for m in locked.members] == [("a.exe", b"", True)]


def test_a_zip_declaring_far_too_many_members_is_not_opened():
    data = samples.zip_of({f"{i}": b"" for i in range(30)})
    listing = list_members(data, budget(max_members=5))
    assert listing.problems == (("limit_exceeded", "max_archive_members"),) and listing.members == ()


def test_a_document_hiding_an_executable_is_listed():
    doc = samples.docx()
    with_exe = samples.zip_of({**_members(doc), "word/media/run.exe": b"MZ"})
    outside = samples.zip_of({**_members(doc), "payload.bin": b"x"})
    assert "word/media/run.exe" in [m.name for m in list_members(with_exe, budget()).members]
    assert "payload.bin" in [m.name for m in list_members(outside, budget()).members]
    jar = samples.zip_of({"META-INF/MANIFEST.MF": b"Manifest-Version: 1.0\n", "a/B.class": b"\xca\xfe\xba\xbe"})
    assert [m.name for m in list_members(jar, budget()).members] == ["META-INF/MANIFEST.MF", "a/B.class"]


def _members(data: bytes) -> dict[str, bytes]:
    import io
    import zipfile
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {n: zf.read(n) for n in zf.namelist()}
