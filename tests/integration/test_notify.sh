#!/usr/bin/env bash
# test_notify.sh — pgmoverd speaks systemd's notify protocol by itself
# (Type=notify in systemd/pgmoverd.service.in): READY=1 and STATUS= once it
# listens, RELOADING=1 then READY=1 on SIGHUP, STOPPING=1 on SIGTERM. A
# datagram socket stands in for systemd.
set -uo pipefail
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh
. tests/integration/pgmd.sh

work=$(t_tmpdir)
listener=
cleanup() {
    pgmd_stop >/dev/null 2>&1
    [[ -n "$listener" ]] && kill "$listener" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

# collect every datagram into a file, one per line
python3 - "$work/notify.sock" "$work/notify.log" <<'PY' &
import os, socket, sys
path, out = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
with open(out, "a", buffering=1) as f:
    while True:
        f.write(s.recv(4096).decode() + "\n")
PY
listener=$!
t_wait_for 10 test -S "$work/notify.sock" || t_fail "listener" "did not start"

export NOTIFY_SOCKET="$work/notify.sock"
pgmd_start "$work/d" || { t_fail "daemon" "did not start"; t_summary; exit 1; }
unset NOTIFY_SOCKET
t_check "READY=1 once listening" t_wait_for 10 grep -q "READY=1" "$work/notify.log" ||
    t_detail "$(cat "$work/notify.log")"
t_check "STATUS= says what runs" t_wait_for 10 grep -q "^STATUS=0 job(s)" "$work/notify.log" ||
    t_detail "$(cat "$work/notify.log")"

: > "$work/notify.log"
kill -HUP "$PGMD_PID"
t_wait_for 10 grep -q "READY=1" "$work/notify.log"
t_assert_eq "SIGHUP: RELOADING=1 then READY=1" "RELOADING=1 READY=1" \
    "$(grep -E '^(RELOADING|READY)=1$' "$work/notify.log" | tr '\n' ' ' | sed 's/ $//')"

pgmd_stop
t_assert_eq "SIGTERM exits 0" 0 "$?"
t_check "STOPPING=1 on SIGTERM" t_wait_for 10 grep -q "STOPPING=1" "$work/notify.log" ||
    t_detail "$(cat "$work/notify.log")"

t_summary
