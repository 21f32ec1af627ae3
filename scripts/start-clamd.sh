#!/usr/bin/env bash
# Start a private clamd (Debian clamav-daemon) with its own config in DIR.
#
#   scripts/start-clamd.sh DIR [--tcp]
#
# Listens on a unix socket DIR/clamd.sock, or with --tcp on 127.0.0.1 and a free
# port. Signatures: the official ones in DIR/db. Without them (no *.cvd/*.cld)
# every start tries `freshclam` again, and if that fails too uses what DIR/db
# holds (tests write their own) or else a small TEST set it writes (EICAR by
# body + clam.exe by MD5, named ClamAV-Test-File), with a LOUD warning on
# stderr: on every such start, also when the clamd of DIR is running already. Waits until clamd answers PING, then prints its address
# (unix:///abs/DIR/clamd.sock or tcp://127.0.0.1:PORT) on stdout, and nothing
# else. ClamAV's own scan limits (MaxFileSize, MaxScanSize, MaxRecursion...) are
# reported (AlertExceedsMax), not passed as clean. Idempotent: if the clamd of DIR is running already, just prints its
# address. Stop it with: kill "$(cat DIR/clamd.pid)".
#
# Environment: CLAMD_STREAM_MAX (default 25M, the relay's clamd_stream_max),
# CLAMD_EXTRA_CONFIG (more clamd.conf lines, e.g. "MaxFileSize 10M"),
# CLAMD_NO_FRESHCLAM=1 (do not try freshclam), CLAMD_START_TIMEOUT (s, 120).
set -euo pipefail

usage() { echo "usage: $0 DIR [--tcp]" >&2; exit 2; }
[[ $# -ge 1 && $# -le 2 ]] || usage
mode=unix
[[ $# -eq 2 ]] && { [[ $2 == --tcp ]] || usage; mode=tcp; }

mkdir -p "$1/db"
dir=$(cd "$1" && pwd)
conf=$dir/clamd.conf
pidfile=$dir/clamd.pid
log=$dir/clamd.log
stream_max=${CLAMD_STREAM_MAX:-25M}
start_timeout=${CLAMD_START_TIMEOUT:-120}

alive() {  # alive PID: the process exists and is not a zombie
    local state
    [[ -r /proc/$1/stat ]] || return 1
    state=$(sed -E 's/^[0-9]+ \(.*\) ([A-Za-z]).*/\1/' "/proc/$1/stat" 2>/dev/null) || return 1
    [[ $state != Z && $state != X ]]
}

ping_ok() { clamdscan --config-file="$conf" --ping 1 >/dev/null 2>&1; }
official() { compgen -G "$dir/db/*.c[lv]d" >/dev/null; }

running=no
if [[ -s $pidfile && -s $dir/address ]] && alive "$(cat "$pidfile")" && ping_ok; then
    running=yes
fi

# -- signatures: without the official ones, try freshclam again on every start
if ! official && [[ ${CLAMD_NO_FRESHCLAM:-0} != 1 ]] && command -v freshclam >/dev/null; then
    cat >"$dir/freshclam.conf" <<EOF
DatabaseDirectory $dir/db
DatabaseOwner $(id -un)
DatabaseMirror database.clamav.net
ConnectTimeout 10
ReceiveTimeout 60
Checks 1
UpdateLogFile $dir/freshclam.log
EOF
    timeout 600 freshclam --config-file="$dir/freshclam.conf" --no-warnings >/dev/null 2>&1 || true
    if official && [[ $running == yes ]]; then
        clamdscan --config-file="$conf" --reload >/dev/null 2>&1 || true   # the running clamd loads them
    fi
fi
if ! official; then
    if ! compgen -G "$dir/db/*.[chn]db" >/dev/null; then
        # EICAR by body: the standard test string, hex encoded, anywhere in a file.
        printf 'Eicar-Test-Signature:0:*:%s\n' \
            "$(printf '%s' 'X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*' | od -An -tx1 | tr -d ' \n')" \
            >"$dir/db/test.ndb"
        # clam.exe by MD5 (clamav-testfiles): ClamAV's unpackers rebuild it from every test file.
        clam=/usr/share/clamav-testfiles/clam.exe
        if [[ -r $clam ]]; then
            printf '%s:%s:ClamAV-Test-File\n' "$(md5sum <"$clam" | cut -d' ' -f1)" "$(stat -c %s "$clam")" >"$dir/db/test.hdb"
        else
            echo 'aa15bcf478d165efd2065190eb473bcb:544:ClamAV-Test-File' >"$dir/db/test.hdb"
        fi
    fi
    if [[ ${CLAMD_NO_FRESHCLAM:-0} == 1 ]]; then
        why="freshclam was not tried (CLAMD_NO_FRESHCLAM=1)."
    else
        why="freshclam could not fetch the official ClamAV signatures."
    fi
    {
        echo "############################################################################"
        echo "## WARNING: $why"
        echo "## This clamd has ONLY TEST SIGNATURES (no official *.cvd/*.cld in its"
        echo "## database). It detects NO real malware. Do not use it for real mail."
        echo "## Signature directory: $dir/db"
        echo "############################################################################"
    } >&2
fi

if [[ $running == yes ]]; then
    cat "$dir/address"
    exit 0
fi

# -- config
if [[ $mode == tcp ]]; then
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
    listen="TCPAddr 127.0.0.1
TCPSocket $port"
    address="tcp://127.0.0.1:$port"
else
    rm -f "$dir/clamd.sock"
    listen="LocalSocket $dir/clamd.sock
LocalSocketMode 660"
    address="unix://$dir/clamd.sock"
fi
cat >"$conf" <<EOF
Foreground yes
PidFile $pidfile
DatabaseDirectory $dir/db
$listen
SelfCheck 0
Bytecode no
StreamMaxLength $stream_max
AlertExceedsMax yes
MaxThreads 4
ReadTimeout 30
CommandReadTimeout 30
LogFile $log
LogTime yes
${CLAMD_EXTRA_CONFIG:-}
EOF

setsid clamd --config-file="$conf" </dev/null >>"$log" 2>&1 &
pid=$!
echo "$pid" >"$pidfile"

deadline=$((SECONDS + start_timeout))
until ping_ok; do
    if ! alive "$pid"; then
        echo "clamd exited during start-up; see $log:" >&2
        tail -n 20 "$log" >&2
        exit 1
    fi
    if ((SECONDS >= deadline)); then
        echo "clamd did not answer PING within ${start_timeout}s; see $log" >&2
        kill "$pid" 2>/dev/null || true
        exit 1
    fi
    sleep 0.2
done
echo "$address" >"$dir/address"
echo "$address"
