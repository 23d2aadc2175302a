#!/usr/bin/env bash
# demo.sh — a whole migration on a throwaway local pair, from a fresh Debian 12
# machine: installs what it needs, builds pgmover, starts a Heroku-like source
# (TLS, database owned by a non-superuser) and an empty target on loopback,
# fills the source with pgbench data, and moves it with pgmoverd:
# start -> synced -> freeze -> verified -> cutover -> finish -> completed.
# DEMO_SCALE (default 10) is the pgbench scale; DEMO_KEEP=1 keeps the servers;
# DEMO_METHOD=triggers moves it live (change capture, pgbench writing meanwhile)
# instead of by dump and restore (the default).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

scripts/deps.sh
[[ -d build ]] || meson setup build >/dev/null
ninja -C build >/dev/null

work=$(mktemp -d /tmp/pgmover-demo.XXXXXX)
chmod 755 "$work"
bed="$work/bed"
daemon_pid=
cleanup() {
    [[ -n "$daemon_pid" ]] && kill -TERM "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null
    if [[ "${DEMO_KEEP:-0}" == 1 ]]; then
        echo "servers kept: . $bed/env ; stop with tests/testbed/testbed.sh stop $bed"
    else
        tests/testbed/testbed.sh stop "$bed" >/dev/null 2>&1 || true
        rm -rf "$work"
    fi
}
trap cleanup EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "starting a Heroku-like source and an empty target"
# like Heroku: no logical decoding (wal_level = replica), no pglogical
TB_SOURCE_WAL_LEVEL=replica TB_SOURCE_PRELOAD= tests/testbed/testbed.sh start "$bed" >/dev/null
# shellcheck disable=SC1091
. "$bed/env"
echo "source: ${SOURCE_URL/:$SOURCE_OWNER_PASSWORD@/:****@}"
echo "target: ${TARGET_URL/:$TARGET_ADMIN_PASSWORD@/:****@}"

say "filling the source with pgbench data (scale ${DEMO_SCALE:-10}) as the database owner"
"$TB_PGBIN/pgbench" -i -q -s "${DEMO_SCALE:-10}" "$SOURCE_URL" 2>&1 | tail -1

say "starting pgmoverd"
cat > "$work/pgmoverd.conf" <<CONF
socket_path = $work/pgmoverd.sock
state_dir = $work/state
log_level = info
pg_bindir = $TB_PGBIN
CONF
build/pgmoverd -c "$work/pgmoverd.conf" 2>"$work/pgmoverd.log" &
daemon_pid=$!
export PGMOVER_SOCKET="$work/pgmoverd.sock"
for _ in $(seq 50); do build/pgmover version >/dev/null 2>&1 && break; sleep 0.1; done
build/pgmover version

wait_state() {
    local want=$1 state
    for _ in $(seq 1200); do
        state=$(build/pgmover status shop | awk 'NR == 1 { print $2 }')
        [[ "$state" == "$want" ]] && return 0
        if [[ "$state" == failed ]]; then
            build/pgmover status shop
            return 1
        fi
        sleep 0.25
    done
    echo "demo: timed out waiting for $want" >&2
    return 1
}

method=${DEMO_METHOD:-dump}
say "creating the job (method $method)"
build/pgmover create shop --source "$SOURCE_URL" --target "$TARGET_URL" --method "$method" \
    --set cutover_command="echo \"the application would now use \$PGMOVER_TARGET_URL\" | sed 's/:[^:@]*@/:****@/'"
build/pgmover start shop
wait_state synced
if [[ $method == triggers ]]; then
    say "synced: the target follows the source; pgbench writes for 10 s meanwhile"
    "$TB_PGBIN/pgbench" -n -c 4 -T 10 "$SOURCE_URL" 2>&1 | grep -E "^tps|processed"
    build/pgmover status shop | sed -n 1,8p
else
    say "synced: the rehearsal copy is done, the source is still writable"
    status=$(build/pgmover status shop)
    head -3 <<<"$status"
    build/pgmover --json status shop | sed -n 's/.*"expected_freeze_copy_seconds":\([0-9.]*\).*/expected copy time during the freeze: \1 s/p'
fi

say "freeze: writes stop on the source, the final copy (dump) or the last apply round (triggers), then verification"
build/pgmover freeze shop
wait_state verified
if psql -X -q "$SOURCE_URL" -c "insert into pgbench_history (tid, bid, aid, delta) values (1, 1, 1, 1)" 2>/dev/null; then
    echo "demo: the source accepted a write while frozen" >&2
    exit 1
fi
echo "the source refuses writes while frozen (cannot execute INSERT in a read-only transaction)"
status=$(build/pgmover status shop)
head -3 <<<"$status"

say "cutover"
build/pgmover cutover shop
wait_state rollback_window
grep "the application would now use" "$work/pgmoverd.log" | sed 's/^<[0-9]>//' | tail -1

say "finish: close the rollback window"
build/pgmover finish shop
wait_state completed
build/pgmover status shop
say "audit trail ($work/state/shop/audit.jsonl, hash-chained) and the summary"
build/pgmover events shop
build/pgmover events shop --check
say "demo finished: the target holds the source's data"
