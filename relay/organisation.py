"""Who is inside the organisation: domains, sender groups and distribution lists.

Declared in the policy file (``organisation:``); scanners and the engine read
it to tell internal from external recipients and to place a sender in a group.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass, field

from relay.envelope import domain_of


@dataclass(frozen=True, slots=True)
class Organisation:
    name: str = ""
    internal_domains: tuple[str, ...] = ()
    groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # group -> address/domain patterns
    distribution_lists: tuple[str, ...] = ()                            # addresses (lower case)

    def is_internal(self, address: str) -> bool:
        domain = domain_of(address)
        return any(domain == d or domain.endswith("." + d) for d in self.internal_domains)

    def group_of(self, address: str) -> str | None:
        """The first group whose patterns match ``address`` (fnmatch on the address, or a domain)."""
        addr = address.strip().strip("<>").lower()
        domain = domain_of(addr)
        for group, patterns in self.groups.items():
            for pattern in patterns:
                if ("@" in pattern and fnmatch.fnmatchcase(addr, pattern)) or (
                    "@" not in pattern and (fnmatch.fnmatchcase(domain, pattern) or domain.endswith("." + pattern))
                ):
                    return group
        return None

    def is_list(self, address: str) -> bool:
        return address.strip().strip("<>").lower() in self.distribution_lists
