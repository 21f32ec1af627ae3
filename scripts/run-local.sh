#!/usr/bin/env bash
# Run the relay locally on its defaults (used by `make run`):
#
#   capture sink  relay sink on 127.0.0.1:10026, storing mail byte for byte in var/outbox/new/
#   clamd         a private clamd in var/clamd (scripts/start-clamd.sh), unless RELAY_CLAMD is set
#   relay         relay serve in the foreground on 127.0.0.1:10025, forwarding to the sink
#
# Ctrl-C (or SIGTERM) stops everything this script started, by PID.
# Environment: VENV (default .venv); any RELAY_* setting is passed to the relay.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
RELAY="$VENV/bin/relay"
PY="$VENV/bin/python"
[[ -x $RELAY ]] || { echo "run-local: $RELAY not found; run 'make run' (it creates the venv)" >&2; exit 1; }

mkdir -p var/outbox var/log
sink_pid="" relay_pid="" clamd_pidfile=""

cleanup() {
    trap - INT TERM EXIT
    [[ -n $relay_pid ]] && kill -TERM "$relay_pid" 2>/dev/null && wait "$relay_pid" 2>/dev/null || true
    [[ -n $sink_pid ]] && kill -TERM "$sink_pid" 2>/dev/null || true
    if [[ -n $clamd_pidfile && -r $clamd_pidfile ]]; then
        kill -TERM "$(cat "$clamd_pidfile")" 2>/dev/null || true
    fi
    echo "run-local: stopped" >&2
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

answers() {  # answers HOST PORT: something greets on HOST:PORT
    "$PY" - "$1" "$2" <<'EOF'
import socket, sys
try:
    with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1) as s:
        sys.exit(0 if s.recv(4).startswith(b"220") else 1)
except OSError:
    sys.exit(1)
EOF
}

wait_for() {  # wait_for NAME HOST PORT PID LOG
    for _ in $(seq 1 100); do
        answers "$2" "$3" && return 0
        kill -0 "$4" 2>/dev/null || { echo "run-local: $1 exited; its log ($5):" >&2; cat "$5" >&2; exit 1; }
        sleep 0.1
    done
    echo "run-local: $1 did not answer on $2:$3 within 10 s; log: $5" >&2
    exit 1
}

# -- the next hop: a capture sink
if answers 127.0.0.1 10026; then
    echo "run-local: something already answers on 127.0.0.1:10026; stop it first" >&2
    exit 1
fi
"$RELAY" sink --listen 127.0.0.1:10026 --maildir var/outbox </dev/null >>var/log/sink.log 2>&1 &
sink_pid=$!
wait_for "capture sink" 127.0.0.1 10026 "$sink_pid" var/log/sink.log

# -- ClamAV
if [[ -z ${RELAY_CLAMD:-} ]]; then
    pidfile=var/clamd/clamd.pid
    already=""
    [[ -r $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null && already=yes
    echo "run-local: starting a private clamd in var/clamd (may take a while: freshclam is tried until the official signatures are in)..." >&2
    RELAY_CLAMD=$(scripts/start-clamd.sh var/clamd </dev/null)
    export RELAY_CLAMD
    [[ -z $already ]] && clamd_pidfile=$pidfile
fi

export RELAY_UPSTREAM=${RELAY_UPSTREAM:-127.0.0.1:10026}
listen=${RELAY_LISTEN:-127.0.0.1:10025}
host=${listen%:*} port=${listen##*:}

cat >&2 <<EOF

relay: listening on $listen, forwarding to $RELAY_UPSTREAM (capture sink), clamd at $RELAY_CLAMD
Send a test message:
  swaks --server $listen --from alice@example.ac.uk --to bob@example.org --body 'Hello from swaks'
  $PY -c "import smtplib; smtplib.SMTP('$host', $port).sendmail('alice@example.ac.uk', ['bob@example.org'], b'Subject: hi\r\n\r\nHello.\r\n')"
Captured mail (byte for byte): var/outbox/new/   envelopes: var/outbox/envelopes/
Decision log: below (one JSON line per message; console format on a terminal). Ctrl-C stops everything.

EOF

"$RELAY" serve </dev/null &
relay_pid=$!
set +e
wait "$relay_pid"
code=$?
relay_pid=""
exit "$code"
