"""CPU per message of the decision pipeline alone (parse, extract, every scanner but clamd, policy).

The shipped policy over bench/workload.py's fixed 20 KB messages (``plain``: text
only, ``mime``: with a base64 docx), in this process, no SMTP and no clamd: what
``Pipeline.decide`` costs, per stage (its own ``timings``), so a change to a
scanner can be measured in seconds, side by side with another source tree.

    .venv/bin/python bench/pipeline_cpu.py                     # both workloads, 300 messages each
    .venv/bin/python bench/pipeline_cpu.py --profile mime      # plus cProfile's top functions
    .venv/bin/python bench/pipeline_cpu.py --inline            # no thread hops (their cost, by difference)

CPU is process time (all threads); the machine is shared, so compare runs made
one after the other, several times.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import cProfile
import pstats
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import workload  # noqa: E402

from relay.config import Settings  # noqa: E402
from relay.envelope import Envelope  # noqa: E402
from relay.pipeline import Pipeline  # noqa: E402
from relay.scanners import text  # noqa: E402
from relay.serving import build_pipeline  # noqa: E402

ENVELOPE = Envelope("alice.smith@example.ac.uk", ("bob@partner.example.com",), "127.0.0.1")


def measure(kind: str, count: int, profile: bool) -> str:
    raw = workload.fixed(kind, 20 * 1024, 1)[0].data
    settings = Settings(policy=str(ROOT / "policies" / "icmp-email-use.yaml"))
    full = build_pipeline(settings)
    pipeline = Pipeline(settings, full.policy, [s for s in full.available if s.name != "clamav"])
    stages: collections.Counter[str] = collections.Counter()

    async def run(n: int) -> None:
        for _ in range(n):
            text._CACHE.clear()          # each message prepared afresh, as in the relay
            decision = await pipeline.decide(ENVELOPE, raw)
            stages.update(decision.timings)

    asyncio.run(run(20))                 # warm up
    stages.clear()
    start = time.process_time()
    asyncio.run(run(count))
    cpu = (time.process_time() - start) / count
    lines = [f"{kind}: {len(raw)} bytes, {count} messages, decide CPU {1000 * cpu:.2f} ms per message",
             "  wall ms per stage: " + ", ".join(f"{k} {1000 * v / count:.3f}" for k, v in stages.most_common())]
    if profile:
        prof = cProfile.Profile()
        prof.runcall(asyncio.run, run(count))
        out = pstats.Stats(prof)
        out.sort_stats("tottime").print_stats(25)
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("kinds", nargs="*", help="plain and/or mime (default: both)")
    ap.add_argument("--count", type=int, default=300)
    ap.add_argument("--profile", action="store_true", help="print cProfile's top functions too")
    ap.add_argument("--inline", action="store_true", help="run thread work inline (to see what the hops cost)")
    args = ap.parse_args()
    if not set(args.kinds) <= {"plain", "mime"}:
        ap.error("workloads: plain, mime")
    if args.inline:
        async def inline(fn, *a, **k):
            return fn(*a, **k)
        asyncio.to_thread = inline
    for kind in args.kinds or ["plain", "mime"]:
        print(measure(kind, args.count, args.profile), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
