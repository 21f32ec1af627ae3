#!/usr/bin/env bash
# Fuzz the MIME/archive parser for a bounded time:  fuzz/run.sh [SECONDS]   (default 60)
# Corpus and crash files live under var/fuzz/ (git-ignored); the corpus is seeded from tests/data.
# Exit status 0: no failure found; otherwise libFuzzer's, with the failing input in var/fuzz/.
# atheris comes from the `fuzz` extra (pip install -e '.[fuzz]'). Without it the run falls back to a
# plain random mutation loop, NOT coverage-guided, and says so loudly; FUZZ_REQUIRE_ATHERIS=1 makes
# that an error (exit 3) instead.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
py=${PYTHON:-.venv/bin/python}
if ! "$py" -c 'import atheris' 2>/dev/null; then
    "$py" -m pip install -q -e '.[fuzz]' >&2 || true
fi
if ! "$py" -c 'import atheris' 2>/dev/null; then
    cat >&2 <<'WARN'
########################################################################################
#  WARNING: atheris is not installed and could not be installed (pip install -e '.[fuzz]').
#  Falling back to a plain random mutation loop: NO coverage guidance. This is a much
#  weaker test than `make fuzz` is meant to be; do not report it as coverage-guided fuzzing.
########################################################################################
WARN
    if [ "${FUZZ_REQUIRE_ATHERIS:-0}" = 1 ]; then
        echo "FUZZ_REQUIRE_ATHERIS=1: refusing to run without atheris" >&2
        exit 3
    fi
fi
mkdir -p var/fuzz/corpus
exec "$py" fuzz/fuzz_message.py -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=20 \
    -artifact_prefix=var/fuzz/ var/fuzz/corpus
