import pytest

from relay.extract.plain import decode, html_charset


@pytest.mark.parametrize(("data", "charset", "expected"), [
    ("café".encode(), "utf-8", "café"),
    ("café £5".encode("cp1252"), "", "café £5"),                     # no charset, not utf-8
    ("café €5".encode("cp1252"), "utf-8", "café €5"),                # declared utf-8, really windows-1252
    ("€5".encode("cp1252"), "iso-8859-1", "€5"),                     # latin-1 label means windows-1252
    ("naïve".encode("utf-8"), "us-ascii", "naïve"),                  # ascii label on utf-8 bytes
    ("café".encode(), "x-no-such-charset", "café"),                  # unknown label
    ("Ж".encode("koi8-r"), "koi8-r", "Ж"),                           # a declared charset that fits
    (b"\xff\xfeN\x00H\x00S\x00", "", "NHS"),                         # UTF-16 LE BOM
    (b"\xfe\xff\x00N\x00H\x00S", "utf-8", "NHS"),                    # BOM wins over the label
    (b"\xef\xbb\xbfNHS", "", "NHS"),                                 # UTF-8 BOM dropped
    ("NHS number".encode("utf-16-le"), "", "NHS number"),            # UTF-16 without BOM
    (b"", "utf-8", ""),
])
def test_decode(data, charset, expected):
    assert decode(data, charset) == expected


def test_undefined_windows_1252_bytes_become_replacement_characters():
    assert decode(b"a\x81b\xe9", "") == "a\ufffdbé"


def test_html_meta_charset():
    assert html_charset(b'<html><head><meta charset="windows-1252">') == "windows-1252"
    assert html_charset(b'<meta http-equiv="Content-Type" content="text/html; charset=iso-8859-1">') == "iso-8859-1"
    assert html_charset(b"<p>no meta</p>") == ""
