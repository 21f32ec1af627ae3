#!/usr/bin/env bash
# Fuzz the MIME/archive parser for a bounded time:  fuzz/run.sh [SECONDS]   (default 60)
# Corpus and crash files live under var/fuzz/ (git-ignored); the corpus is seeded from tests/data.
# Exit status 0: no failure found; otherwise libFuzzer's, with the failing input in var/fuzz/.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
py=${PYTHON:-.venv/bin/python}
"$py" -c 'import atheris' 2>/dev/null || "$py" -m pip install -q 'atheris>=2.3' || echo "atheris unavailable: using the mutation loop" >&2
mkdir -p var/fuzz/corpus
exec "$py" fuzz/fuzz_message.py -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=20 \
    -artifact_prefix=var/fuzz/ var/fuzz/corpus
