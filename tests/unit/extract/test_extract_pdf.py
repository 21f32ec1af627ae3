from tests.data.documents import generate as g

PAGES = [["Patient: Ann Smith", "NHS No 943 476 5919"], ["Page two"]]


def test_pdf_text_page_by_page(extract_file):
    text, problems = extract_file("letter.pdf", g.pdf(PAGES))
    assert problems == ()
    assert text.splitlines() == ["Patient: Ann Smith", "NHS No 943 476 5919", "", "Page two"]


def test_owner_password_only_pdf_is_extracted_and_not_protected(extract_chunk):
    chunk, problems = extract_chunk("locked.pdf", g.pdf_encrypted(g.pdf(PAGES), "", "owner-secret"))
    assert "NHS No 943 476 5919" in chunk.text
    assert chunk.protected is False and chunk.kind == "pdf" and problems == ()


def test_user_password_pdf_gives_no_text_and_no_finding(extract_file):
    assert extract_file("secret.pdf", g.pdf_encrypted(g.pdf(PAGES), "user-secret", "owner-secret")) == (None, ())


def test_truncated_pdf_is_extraction_failed(extract_file):
    text, problems = extract_file("cut.pdf", g.pdf(PAGES)[:120])
    assert text is None
    assert [(p.kind, p.type, p.where) for p in problems] == [("extraction_failed", "pdf", 'part 1.2 "cut.pdf"')]


def test_pdf_is_recognised_by_its_bytes(extract_file):
    text, _ = extract_file("scan.bin", g.pdf(PAGES))
    assert "Ann Smith" in text


def test_pypdf_does_not_log_document_content(extract_file, caplog):
    import logging

    broken = g.pdf(PAGES).replace(b"/WinAnsiEncoding", b"/NHS9434765919").replace(b"startxref\n", b"startxref\n9")
    with caplog.at_level(logging.DEBUG):
        text, _ = extract_file("odd.pdf", broken)
    assert "Ann Smith" in text
    assert not [r for r in caplog.records if r.name.startswith("pypdf")]
