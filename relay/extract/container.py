"""Zip containers and XML inside them, read safely and within the budget.

XML is parsed with the stdlib expat parser driven by callbacks (no tree is
built), with document type declarations refused outright: OOXML and ODF never
need a DTD, so entity-expansion bombs ("billion laughs", quadratic blowup)
and external entities cannot start. Same effect as defusedxml's
``forbid_dtd=True``, without the dependency. Members are decompressed in
chunks through :meth:`Budget.take_unpacked`, so a member that inflates to
gigabytes costs at most the unpacked-bytes bound.
"""

from __future__ import annotations

import io
import zipfile
from xml.parsers import expat

from relay.extract.budget import Budget

_CHUNK = 64 * 1024


class UnsafeXML(ValueError):
    """The XML carried a DTD (entity declarations); refused."""


def _refuse(*_args: object) -> None:
    raise UnsafeXML("DTD refused")


def open_zip(data: bytes) -> zipfile.ZipFile:
    return zipfile.ZipFile(io.BytesIO(data))


def read_member(zf: zipfile.ZipFile, name: str, budget: Budget, limit: int = 1 << 20) -> bytes:
    """A small member (manifest, rels, workbook) read whole, at most ``limit`` bytes."""
    with zf.open(name) as fh:
        data = fh.read(limit + 1)
    budget.take_unpacked(len(data))
    if len(data) > limit:
        raise ValueError(f"member {name} larger than {limit} bytes")
    return data


class Handler:
    """Callbacks for :func:`parse_member`, bound straight to expat (no wrapper call per element).

    Element names arrive as written (``w:p``); handlers drop the prefix
    themselves (``name[name.find(":") + 1:]``) so any prefix works.
    """

    __slots__ = ()

    def start(self, name: str, attrs: dict[str, str]) -> None: ...

    def end(self, name: str) -> None: ...

    def data(self, data: str) -> None: ...

    def done(self) -> bool:
        """True to stop parsing early (the text budget is spent)."""
        return False


def make_parser(handler: Handler) -> expat.XMLParserType:
    parser = expat.ParserCreate()
    parser.StartDoctypeDeclHandler = _refuse
    parser.EntityDeclHandler = _refuse
    parser.UnparsedEntityDeclHandler = _refuse
    parser.ExternalEntityRefHandler = _refuse
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.buffer_text = True
    parser.buffer_size = _CHUNK
    parser.StartElementHandler = handler.start
    parser.EndElementHandler = handler.end
    parser.CharacterDataHandler = handler.data
    return parser


def parse_member(zf: zipfile.ZipFile, name: str, handler: Handler, budget: Budget) -> None:
    """Stream one member through expat into ``handler``; stops early when ``handler.done()``."""
    parser = make_parser(handler)
    with zf.open(name) as fh:
        while True:
            chunk = fh.read(_CHUNK)
            if not chunk:
                break
            budget.take_unpacked(len(chunk))
            budget.tick()
            parser.Parse(chunk, False)
            if handler.done():
                return
    parser.Parse(b"", True)


def parse_bytes(data: bytes, handler: Handler) -> None:
    parser = make_parser(handler)
    parser.Parse(data, True)
