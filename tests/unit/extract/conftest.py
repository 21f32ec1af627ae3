"""Factories for the extraction tests: a message carrying one attachment, extracted."""

from __future__ import annotations

import pytest

from relay.extract import ExtractLimits, extract
from relay.message import ParsedMessage, Part


def message_with(*attachments: tuple[str, bytes] | tuple[str, bytes, str]) -> ParsedMessage:
    parts = [Part("1.1", "text/plain", payload=b"See attached.")]
    for n, item in enumerate(attachments, 2):
        name, data, ctype = (*item, "application/octet-stream")[:3]
        parts.append(Part(f"1.{n}", ctype, name, disposition="attachment", payload=data))
    return ParsedMessage(b"", Part("1", "multipart/mixed", children=tuple(parts)))


@pytest.fixture
def extract_file():
    """``extract_file(name, data, ctype=..., limits=...)`` -> (text of the attachment or None, problems)."""

    def run(name: str, data: bytes, ctype: str = "application/octet-stream", limits: ExtractLimits = ExtractLimits()):
        result = extract(message_with((name, data, ctype)), limits)
        texts = [c for c in result.chunks if c.source == "attachment"]
        assert len(texts) <= 1
        return (texts[0].text if texts else None), result.problems

    return run


@pytest.fixture
def extract_chunk():
    """``extract_chunk(name, data)`` -> (the attachment's TextChunk or None, problems)."""

    def run(name: str, data: bytes):
        result = extract(message_with((name, data)))
        chunks = [c for c in result.chunks if c.source == "attachment"]
        return (chunks[0] if chunks else None), result.problems

    return run
