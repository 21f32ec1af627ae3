"""What one message's extraction may still spend: text characters, unpacked bytes, time.

Every extractor receives the same :class:`Budget`. It checks ``tick()`` between
pages, zip members and XML chunks (a monotonic clock read, cheap), stops
collecting text once ``full(n)`` says the text budget is gone, and reads
compressed members through ``take_unpacked`` so a zip bomb costs bounded work.
Running out is not an error of the document: the caller turns
:class:`OutOfTime` and :class:`OutOfRoom` into ``limit_exceeded`` findings.
"""

from __future__ import annotations

import time


class OutOfTime(Exception):
    """The extraction deadline passed (``limit_exceeded`` / ``extract_timeout``)."""


class OutOfRoom(Exception):
    """A document unpacked past the unpacked-bytes bound (``limit_exceeded`` / ``max_unpacked_bytes``)."""


class Budget:
    __slots__ = ("chars", "unpacked", "deadline")

    def __init__(self, chars: int, unpacked: int, deadline: float) -> None:
        self.chars = chars          # characters of text still allowed (the caller trims exactly)
        self.unpacked = unpacked    # decompressed container bytes still allowed
        self.deadline = deadline    # time.monotonic() value

    def tick(self) -> None:
        if time.monotonic() > self.deadline:
            raise OutOfTime

    def full(self, collected: int) -> bool:
        """True once ``collected`` characters exceed what may still be kept."""
        return collected > self.chars

    def take_unpacked(self, n: int) -> None:
        self.unpacked -= n
        if self.unpacked < 0:
            raise OutOfRoom
