"""relay.scanners.filetypes: real types, dangerous types, macros, DDE and lies."""

from __future__ import annotations

import asyncio

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pytest

from relay.message import Part, parse
from relay.scanners import filetypes
from relay.scanners.filetypes import FileTypeScanner, check_part
from tests.data.attachments import samples


def found(name: str, data: bytes, declared: str = "application/octet-stream") -> set[tuple[str, str]]:
    part = Part("1.2", declared, name, disposition="attachment", payload=data)
    return {(f.kind, f.type) for f in check_part(part)}


@pytest.mark.parametrize(("name", "make", "expected"), [
    ("clam.exe", lambda: samples.testfile("clam.exe"), ("executable", "pe")),
    ("tool", samples.elf, ("executable", "elf")),
    ("tool", samples.macho, ("executable", "macho")),
    ("Setup", samples.macho_fat, ("executable", "macho")),
    ("x.bin", samples.dos_mz, ("executable", "pe")),
    ("backup", samples.qcow2, ("disk_image", "img")),
    ("setup.msi", samples.msi, ("executable", "msi")),
    ("x.lnk", samples.lnk, ("script", "lnk")),
    ("cd.iso", samples.iso, ("disk_image", "iso")),
    ("disk.vhdx", samples.vhdx, ("disk_image", "vhdx")),
    ("disk.vhd", samples.vhd, ("disk_image", "vhd")),
    ("mac.dmg", samples.dmg, ("disk_image", "dmg")),
    ("disk.img", samples.mbr_image, ("disk_image", "img")),
    ("run.js", lambda: b"var s = new ActiveXObject('WScript.Shell');", ("script", "js")),
    ("run.vbs", lambda: b"MsgBox 1", ("script", "vbs")),
    ("run.ps1", lambda: b"Write-Host 1", ("script", "ps1")),
    ("run.bat", lambda: b"@echo off\r\n", ("script", "bat")),
    ("run.cmd", lambda: b"@echo off\r\n", ("script", "cmd")),
    ("run.wsf", lambda: b"<job><script language='JScript'>1</script></job>", ("script", "wsf")),
    ("app.jar", lambda: samples.zip_of({"META-INF/MANIFEST.MF": b"Manifest-Version: 1.0\n"}), ("script", "jar")),
    ("x.hta", lambda: b"<html><HTA:APPLICATION id=x>", ("script", "hta")),
    ("install.sh", lambda: b"#!/bin/sh\necho hi\n", ("script", "sh")),
])
def test_dangerous_types(name, make, expected):
    assert expected in found(name, make())


def test_a_java_class_shares_the_universal_magic_and_is_not_an_executable():
    assert found("Main.class", samples.java_class()) == set()
    assert filetypes.executable(samples.java_class()) == ""


def test_text_that_starts_mz_is_not_a_dos_executable():
    assert found("notes", b"MZ Smith wrote: " + b"x" * 200) == set()


def test_libmagic_types_every_attachment_and_archive_member_where_it_could_change_a_finding(monkeypatch):
    seen = []
    real = filetypes.mime_of
    monkeypatch.setattr(filetypes, "mime_of", lambda data: seen.append(data) or real(data))
    bundle = samples.zip_of({"a.csv": b"a,b\n1,2\n", "disk": samples.qcow2(), "memo.pdf": b"not a pdf"})
    raw = samples.message([("notes.txt", b"see you at ten", "text/plain"), ("docs.zip", bundle, "application/zip"),
                           ("clam.exe", samples.testfile("clam.exe"), "application/octet-stream")])
    findings = {(f.kind, f.type, f.where) for f in FileTypeScanner().scan_sync(_ctx(parse(raw)))}
    assert ("disk_image", "img", 'part 1.3 "docs.zip" > "disk"') in findings     # only libmagic knows qcow2
    assert ("type_mismatch", "text", 'part 1.3 "docs.zip" > "memo.pdf"') in findings
    # not the body, not the PE (the exact check settled it), not text under a generic name
    assert sorted(seen) == sorted([bundle, samples.qcow2(), b"not a pdf"])


def test_dangerous_content_under_a_harmless_name_is_also_a_mismatch():
    assert found("invoice.pdf", samples.testfile("clam.exe"), "application/pdf") >= {
        ("executable", "pe"), ("type_mismatch", "pe")}
    assert found("notes.txt", b"#!/bin/sh\nrm -rf ~\n") >= {("script", "sh"), ("type_mismatch", "sh")}
    assert ("script", "lnk") in found("photo.jpg", samples.lnk())
    assert ("type_mismatch", "iso") in found("report.docx", samples.iso())


def test_matching_names_are_not_mismatches():
    assert ("type_mismatch", "pe") not in found("clam.exe", samples.testfile("clam.exe"))
    assert found("cd.iso", samples.iso()) == {("disk_image", "iso")}
    assert found("install.sh", b"#!/bin/sh\n") == {("script", "sh")}


def test_specific_extension_lies():
    assert ("type_mismatch", "zip") in found("report.pdf", samples.testfile("clam.zip"))
    assert ("type_mismatch", "pdf") in found("photo.jpg", samples.pdf())
    assert ("type_mismatch", "pe") in found("scan.png", samples.testfile("clam.exe"))


def test_document_names_over_text_or_unknown_bytes_are_mismatches():
    rows = b"Name, NHS number\r\nJohn Smith, 943 476 5919\r\n"
    assert ("type_mismatch", "text") in found("staff.docx", rows)
    assert ("type_mismatch", "text") in found("staff.pdf", rows, "application/pdf")
    assert ("type_mismatch", "text") in found("staff.xlsx", rows)
    assert ("type_mismatch", "data") in found("staff.docx", b"\x00\x01junk" * 20)
    # Office opens text under these names by design (CSV/HTML exports): read and judged, not a lie
    assert found("staff.xls", rows, "application/vnd.ms-excel") == set()
    assert found("staff.doc", b"<html><body>letter</body></html>", "application/msword") == set()
    assert found("staff.rtf", b"{\\rtf1 hello}") == set()


def test_harmless_differences_are_fine():
    assert found("notes.txt", samples.testfile("clam.zip")) == set()
    assert found("data.bin", samples.pdf()) == set()
    assert found("report.pdf", samples.pdf()) == set()
    assert found("letter.docx", samples.docx()) == set()
    assert found("secret.docx", samples.encrypted_office("pw")) == set()
    assert found("a.csv", b"name,amount\nbob,12\n") == set()


def test_executable_extension_alone_is_medium_confidence():
    part = Part("1.2", "application/octet-stream", "update.exe", disposition="attachment", payload=b"not a PE")
    (finding,) = [f for f in check_part(part) if f.kind == "executable"]
    assert (finding.type, str(finding.confidence)) == ("pe", "medium")


def test_macros_in_ooxml_and_ole2():
    assert ("macro", "vba") in found("book.xlsm", samples.macro_xlsm())
    assert ("macro", "vba") in found("old.doc", samples.vba_project())
    assert ("macro", "xlm") in found("book.xlsm", samples.xlm_xlsm())
    assert ("macro", "xlm") not in found("book.xlsm", samples.macro_xlsm())
    assert not any(k == "macro" for k, _ in found("letter.docx", samples.docx()))
    assert not any(k == "macro" for k, _ in found("clam.doc", samples.testfile("clam.ole.doc")))


def test_text_that_olevba_takes_for_vba_source_is_not_a_macro():
    xml = b'<?xml version="1.0" encoding="UTF-8"?>\n<Invoice><ID>INV-1</ID></Invoice>\n'
    assert not any(k == "macro" for k, _ in found("inv-1.xml", xml, "application/xml"))
    assert not any(k == "macro" for k, _ in found("page.mht", b"<html><body>hi</body></html>"))
    assert not any(k == "macro" for k, _ in found("staff.doc", b"Name, NHS number\r\n", "application/msword"))
    assert filetypes.macros(samples.vba_project()) == ["vba"]


def test_dde_in_docx_and_csv():
    assert ("dde", "dde") in found("invite.docx", samples.dde_docx())
    assert ("dde", "dde") in found("sheet.csv", b"a,b\n=cmd|' /C calc'!A0,1\n")
    assert ("dde", "dde") not in found("letter.docx", samples.docx())


def test_bodies_are_not_scripts_by_content():
    body = Part("1.1", "text/plain", payload=b"#!/bin/sh\nthis is how you do it\n")
    assert check_part(body) == []


def test_scanner_reads_archive_members_and_names_them():
    raw = samples.message([("docs.zip", samples.zip_of({"readme.txt": b"hi", "a.exe": samples.testfile("clam.exe")}),
                            "application/zip")])
    findings = asyncio.run(FileTypeScanner().scan(_ctx(parse(raw))))
    assert [(f.kind, f.type, f.where) for f in findings] == [("executable", "pe", 'part 1.2 "docs.zip" > "a.exe"')]


def test_one_magic_per_thread():
    import threading
    seen = []
    t = threading.Thread(target=lambda: seen.append(filetypes._magic()))
    t.start()
    t.join(5)
    assert seen and seen[0] is not filetypes._magic()
    assert filetypes._magic() is filetypes._magic()


class _Ctx:
    def __init__(self, message):
        self.message = message


def _ctx(message):
    return _Ctx(message)


def test_executables_in_bodies_are_found_and_text_is_not_one():
    pe = Part("1.1", "text/plain", payload=samples.testfile("clam.exe"))
    assert {(f.kind, f.type) for f in check_part(pe)} == {("executable", "pe"), ("type_mismatch", "pe")}
    text = Part("1.1", "text/plain", payload=b"MZ Smith wrote: " + b"x" * 200)
    assert check_part(text) == []


_W = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'


def _word(paragraphs: str, encoding: str = "utf-8") -> bytes:
    xml = f'<?xml version="1.0" encoding="{encoding}"?><w:document {_W}><w:body>{paragraphs}</w:body></w:document>'
    return samples.zip_of({"[Content_Types].xml": samples.zipfile_types(), "word/document.xml": xml.encode(encoding)})


def _complex_field(*instr_runs: str) -> str:
    runs = "".join(f"<w:r><w:instrText>{t}</w:instrText></w:r>" for t in instr_runs)
    return (f'<w:p><w:r><w:fldChar w:fldCharType="begin"/></w:r>{runs}'
            f'<w:r><w:fldChar w:fldCharType="end"/></w:r></w:p>')


@pytest.mark.parametrize("paragraphs", [
    '<w:p><w:fldSimple w:instr=" PAGE "><w:r><w:t>1</w:t></w:r></w:fldSimple></w:p>',
    _complex_field(' HYPERLINK "https://example.org/" '),
    _complex_field(' TOC \\o "1-3" \\h '),
    _complex_field(" MERGEFIELD FirstName "),
], ids=["page", "hyperlink", "toc", "mergefield"])
def test_ordinary_word_fields_are_not_dde(paragraphs):
    """Page numbers, hyperlinks, contents and mail merge are fields too; only DDE is active content."""
    assert ("dde", "dde") not in found("report.docx", _word(paragraphs))


@pytest.mark.parametrize("doc", [
    _word(_complex_field("DD", 'EAUTO c:\\windows\\system32\\cmd.exe "/k calc"')),
    _word(_complex_field('DDE c:\\windows\\system32\\cmd.exe "/k calc"'), "utf-16"),
    samples.zip_of({"[Content_Types].xml": samples.zipfile_types(), "word/document.xml": "<w:document/>",
                    "word/media/image1.png": f'<?xml version="1.0"?><w:document {_W}><w:body>'
                                             f'{_complex_field("DDEAUTO calc")}</w:body></w:document>'}),
], ids=["split-across-runs", "utf-16-xml", "xml-named-as-a-picture"])
def test_dde_hidden_in_runs_or_another_encoding_is_found(doc):
    assert ("dde", "dde") in found("invite.docx", doc)


def test_ordinary_rtf_fields_are_not_dde():
    rtf = rb"{\rtf1\ansi Page {\field{\*\fldinst PAGE}{\fldrslt 1}} of {\field{\*\fldinst NUMPAGES}{\fldrslt 2}}}"
    assert ("dde", "dde") not in found("letter.rtf", rtf)


def test_a_vba_project_under_a_harmless_name_in_a_zip_is_still_a_macro():
    doc = samples.zip_of({"[Content_Types].xml": samples.zipfile_types(), "word/media/image9.png": samples.vba_project()})
    assert ("macro", "vba") in found("letter.docx", doc)


def test_dde_in_rtf():
    rtf = rb'{\rtf1\ansi {\field{\*\fldinst DDEAUTO "c:\\windows\\system32\\cmd.exe" "/c calc"}{\fldrslt x}}}'
    assert ("dde", "dde") in found("letter.rtf", rtf)
    assert ("dde", "dde") not in found("plain.rtf", rb"{\rtf1\ansi hello}")

_PREFIXES = [b"", b"MZ", b"\x7fELF", b"PK\x03\x04", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", b"{\\rtf1", b"%PDF-1.4",
             b"#!", b"vhdxfile", b"L\x00\x00\x00\x01\x14\x02\x00"]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(_PREFIXES), st.binary(max_size=3000),
       st.sampled_from(["a.pdf", "a.docx", "a.xls", "a.csv", "a.exe", "a.rtf", "a", "a.zip", "a.jpg"]))
def test_arbitrary_bytes_never_raise(prefix, tail, name):
    findings = check_part(Part("1.2", "application/octet-stream", name, disposition="attachment",
                               payload=prefix + tail))
    assert all(f.where == f'part 1.2 "{name}"' for f in findings)
