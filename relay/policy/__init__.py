"""The policy engine: a YAML policy file, validated and compiled, that turns findings into a verdict.

    from relay.policy import load_policy
    policy = load_policy("policies/icmp-email-use.yaml")   # PolicyError on any problem
    verdict = policy.evaluate(envelope, message, findings)

``schema`` holds the language's vocabulary, ``yamlsrc`` reads YAML with line
numbers, ``conditions`` compiles conditions into closures, ``facts`` computes
what conditions look at, ``reasons`` fills reason templates, ``loader``
validates and builds, ``engine`` evaluates and combines. The language
reference is ``policies/README.md``.
"""

from relay.errors import PolicyError
from relay.policy.engine import Policy
from relay.policy.loader import load_policy, parse_policy
from relay.policy.schema import CustomDetector

__all__ = ["CustomDetector", "Policy", "PolicyError", "load_policy", "parse_policy"]
