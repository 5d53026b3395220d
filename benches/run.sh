#!/usr/bin/env bash
# Throughput benchmark driver for Holdfast's POST /webhooks/stripe.
#
# Builds release binaries, then for each backend (sqlite, and postgres when
# available) starts `holdfast serve` on a free local port, waits for
# GET /readyz == 200, runs `holdfast-bench` at concurrency 1, 8 and 64,
# records the server's peak resident memory around the C=64 run, and stops
# the server with SIGTERM.
#
# Environment knobs (all optional):
#   BENCH_BACKENDS      backends to run, default "sqlite postgres"
#   BENCH_PG_URL        use this Postgres URL instead of a local cluster
#   BENCH_PG_CLUSTER    local cluster "<version> <name>", default "15 main"
#   BENCH_EVENTS        events for C=8 and C=64, default 20000
#   BENCH_EVENTS_C1     events for C=1, default 3000
#   BENCH_CONCURRENCY   concurrency levels, default "1 8 64"
#   BENCH_WARMUP        warm-up events per run, default 500
#   BENCH_READY_TIMEOUT seconds to wait for /readyz, default 60
#   BENCH_BACKLOG       events in the projector backlog run, default 100000 (0: skip)
#   BENCH_RATE          steady rate (events/s) for the lag run, default 2000 (0: skip)
#   BENCH_RATE_SECS     length of the steady-rate run in seconds, default 30
#   BENCH_SEARCH        search the highest sustained rate with lag p99 <= 1 s, default 1
#                       (0: skip); rates from BENCH_SEARCH_FROM (default 1000) doubling up
#                       to BENCH_SEARCH_MAX (default 32000), then BENCH_SEARCH_STEPS
#                       (default 3) bisection steps, BENCH_SEARCH_SECS (default 10) each
#   BENCH_ARGS          extra arguments for holdfast-bench
#   BENCH_SKIP_BUILD=1  use the existing binaries in $CARGO_TARGET_DIR/release
#   BENCH_KEEP=1        keep the temp dir (server logs, SQLite file) and the
#                       holdfast_bench Postgres database
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
SERVER_BIN=$TARGET_DIR/release/holdfast
BENCH_BIN=$TARGET_DIR/release/holdfast-bench

BACKENDS=${BENCH_BACKENDS:-"sqlite postgres"}
EVENTS=${BENCH_EVENTS:-20000}
EVENTS_C1=${BENCH_EVENTS_C1:-3000}
CONCURRENCY=${BENCH_CONCURRENCY:-"1 8 64"}
WARMUP=${BENCH_WARMUP:-500}
READY_TIMEOUT=${BENCH_READY_TIMEOUT:-60}
BACKLOG=${BENCH_BACKLOG:-100000}
RATE=${BENCH_RATE:-2000}
RATE_SECS=${BENCH_RATE_SECS:-30}
SEARCH=${BENCH_SEARCH:-1}
SEARCH_FROM=${BENCH_SEARCH_FROM:-1000}
SEARCH_MAX=${BENCH_SEARCH_MAX:-32000}
SEARCH_STEPS=${BENCH_SEARCH_STEPS:-3}
SEARCH_SECS=${BENCH_SEARCH_SECS:-10}
read -r PG_VERSION PG_CLUSTER <<<"${BENCH_PG_CLUSTER:-15 main}"

SECRET="whsec_bench$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
WORK=$(mktemp -d -t holdfast-bench.XXXXXX)
RESULTS_DIR=$TARGET_DIR/bench
mkdir -p "$RESULTS_DIR"
RESULTS=$RESULTS_DIR/results-$(date +%Y%m%d-%H%M%S).jsonl
SUMMARY=$WORK/summary.txt
: >"$SUMMARY"

SERVER_PID=""
PG_STARTED_BY_US=0
PG_DB_CREATED=0

log() { printf '==> %s\n' "$*" >&2; }

as_postgres() {
    if command -v runuser >/dev/null 2>&1; then
        runuser -u postgres -- "$@"
    else
        su postgres -s /bin/sh -c "$(printf '%q ' "$@")"
    fi
}

stop_server() {
    [[ -n $SERVER_PID ]] || return 0
    if kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 1 150); do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$SERVER_PID" 2>/dev/null; then
            log "server $SERVER_PID ignored SIGTERM for 15s; sending SIGKILL"
            kill -KILL "$SERVER_PID" 2>/dev/null || true
        fi
    fi
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}

cleanup() {
    local rc=$?
    stop_server
    if [[ ${BENCH_KEEP:-0} != 1 ]]; then
        if [[ $PG_DB_CREATED == 1 ]]; then
            as_postgres psql -q -X -v ON_ERROR_STOP=0 -c 'DROP DATABASE IF EXISTS holdfast_bench' >/dev/null 2>&1 || true
        fi
        rm -rf "$WORK"
    else
        log "kept $WORK"
    fi
    if [[ $PG_STARTED_BY_US == 1 ]]; then
        pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" stop >/dev/null 2>&1 || true
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    if command -v python3 >/dev/null 2>&1; then
        python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
    else
        local p
        for _ in $(seq 1 50); do
            p=$((20000 + RANDOM % 40000))
            if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
                echo "$p"
                return
            fi
        done
        return 1
    fi
}

# Sets PG_URL, or returns 1 if no Postgres is usable.
setup_postgres() {
    if [[ -n ${BENCH_PG_URL:-} ]]; then
        PG_URL=$BENCH_PG_URL
        return 0
    fi
    command -v pg_ctlcluster >/dev/null 2>&1 || { log "postgres: pg_ctlcluster not found"; return 1; }
    if ! pg_lsclusters -h 2>/dev/null | awk -v v="$PG_VERSION" -v c="$PG_CLUSTER" '$1==v && $2==c && $4=="online"{f=1} END{exit !f}'; then
        pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" start || { log "postgres: cannot start cluster $PG_VERSION/$PG_CLUSTER"; return 1; }
        PG_STARTED_BY_US=1
    fi
    local port
    port=$(pg_lsclusters -h | awk -v v="$PG_VERSION" -v c="$PG_CLUSTER" '$1==v && $2==c{print $3}')
    port=${port:-5432}
    # A password role so the server (running as this user) can connect over TCP.
    as_postgres psql -q -X -p "$port" -v ON_ERROR_STOP=1 <<'SQL' || { log "postgres: cannot create role/database"; return 1; }
SELECT 'CREATE ROLE holdfast_bench LOGIN' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'holdfast_bench')
\gexec
ALTER ROLE holdfast_bench WITH LOGIN PASSWORD 'holdfast_bench';
DROP DATABASE IF EXISTS holdfast_bench;
CREATE DATABASE holdfast_bench OWNER holdfast_bench;
SQL
    PG_DB_CREATED=1
    PG_URL="postgres://holdfast_bench:holdfast_bench@127.0.0.1:$port/holdfast_bench"
}

# The server's CPU time so far (user + system), in clock ticks.
cpu_ticks() {
    awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0
}

# "<label>: X us of server CPU per event" for a run of <events> between two cpu_ticks.
cpu_line() { # cpu_line <label> <ticks before> <ticks after> <events>
    local hz
    hz=$(getconf CLK_TCK 2>/dev/null || echo 100)
    awk -v l="$1" -v a="$2" -v b="$3" -v n="$4" -v hz="$hz" \
        'BEGIN{ if (n > 0) printf "%s: server CPU %.1f us per event (%.2f s for %d events)\n", l, (b-a)/hz*1e6/n, (b-a)/hz, n }'
}

# A JSON field of the last JSON line of a file (number or null).
json_field() { # json_field <file> <field>
    grep '^{' "$1" | tail -n 1 | python3 -c "import json,sys; v=json.load(sys.stdin).get('$2'); print('null' if v is None else v)" 2>/dev/null || echo null
}

# One paced run at <rate> for <secs>; prints "ok" when the rate was sustained (at least 95 %
# of it achieved, every event acknowledged) with a lag p99 <= 1 s, else "no".
rate_passes() { # rate_passes <backend> <port> <db_url> <rate> <secs>
    local backend=$1 port=$2 db_url=$3 rate=$4 secs=$5 out
    out=$WORK/bench-$backend-search-$rate.txt
    "$BENCH_BIN" --url "http://127.0.0.1:$port" --secret "$SECRET" \
        --database-url "$db_url" --events $((rate * secs)) --concurrency 64 --rate "$rate" \
        --warmup 0 --projector --label "$backend-search$rate" --json >"$out" 2>&1 || true
    grep '^{' "$out" >>"$RESULTS" || true
    local achieved lag non2xx errors
    achieved=$(json_field "$out" events_per_s)
    lag=$(json_field "$out" lag_seconds_p99)
    non2xx=$(json_field "$out" non_2xx)
    errors=$(json_field "$out" errors)
    log "$backend: search rate $rate: achieved ${achieved} ev/s, lag p99 ${lag} s, non-2xx ${non2xx}, errors ${errors}"
    awk -v r="$rate" -v a="$achieved" -v l="$lag" -v n="$non2xx" -v e="$errors" \
        'BEGIN{ print (a != "null" && l != "null" && a >= 0.95 * r && l <= 1.0 && n == 0 && e == 0) ? "ok" : "no" }'
}

# The highest rate (events/s) at which the lag p99 stays <= 1 s: doubling, then bisection.
search_rate() { # search_rate <backend> <port> <db_url>
    local backend=$1 port=$2 db_url=$3 good=0 bad=0 rate=$SEARCH_FROM step mid
    while ((rate <= SEARCH_MAX)); do
        if [[ $(rate_passes "$backend" "$port" "$db_url" "$rate" "$SEARCH_SECS") == ok ]]; then
            good=$rate
            rate=$((rate * 2))
        else
            bad=$rate
            break
        fi
    done
    if ((bad > 0 && good > 0)); then
        for ((step = 0; step < SEARCH_STEPS; step++)); do
            mid=$(((good + bad) / 2))
            if [[ $(rate_passes "$backend" "$port" "$db_url" "$mid" "$SEARCH_SECS") == ok ]]; then good=$mid; else bad=$mid; fi
        done
    fi
    if ((good == 0)); then
        echo "[$backend] highest sustained rate with lag p99 <= 1 s: below $SEARCH_FROM events/s"
    elif ((bad == 0)); then
        echo "[$backend] highest sustained rate with lag p99 <= 1 s: at least $good events/s (search cap)"
    else
        echo "[$backend] highest sustained rate with lag p99 <= 1 s: $good events/s ($bad failed; ${SEARCH_SECS}s runs)"
    fi
}

vm_field() { # vm_field <pid> <VmHWM|VmRSS> -> kB
    awk -v k="$2:" '$1==k{print $2}' "/proc/$1/status" 2>/dev/null || true
}

run_backend() {
    local backend=$1 db_url=$2
    local port log_file
    port=$(free_port)
    log_file=$WORK/server-$backend.log
    log "$backend: starting holdfast serve on 127.0.0.1:$port"
    # Dunning emails the run causes go to .eml files in the temp dir, not the working tree.
    DATABASE_URL=$db_url STRIPE_WEBHOOK_SECRET=$SECRET HOLDFAST_STRIPE_MODE=test HOLDFAST_BIND=127.0.0.1:$port \
        HOLDFAST_MAIL_DIR=$WORK/mail "$SERVER_BIN" serve >"$log_file" 2>&1 &
    SERVER_PID=$!

    local deadline=$((SECONDS + READY_TIMEOUT)) code=""
    while :; do
        code=$(curl -s -o /dev/null -m 2 -w '%{http_code}' "http://127.0.0.1:$port/readyz" || true)
        [[ $code == 200 ]] && break
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            log "$backend: server exited before becoming ready; log tail:"
            tail -n 30 "$log_file" >&2 || true
            SERVER_PID=""
            echo "[$backend] server failed to start" >>"$SUMMARY"
            return 0
        fi
        if ((SECONDS >= deadline)); then
            log "$backend: /readyz not 200 after ${READY_TIMEOUT}s (last: ${code:-none}); log tail:"
            tail -n 30 "$log_file" >&2 || true
            stop_server
            echo "[$backend] server not ready after ${READY_TIMEOUT}s" >>"$SUMMARY"
            return 0
        fi
        sleep 0.2
    done
    log "$backend: ready (pid $SERVER_PID, RSS $(vm_field "$SERVER_PID" VmRSS) kB)"

    local c n out rss_max sampler
    for c in $CONCURRENCY; do
        if ((c == 1)); then n=$EVENTS_C1; else n=$EVENTS; fi
        out=$WORK/bench-$backend-c$c.txt
        log "$backend: C=$c N=$n"
        sampler=""
        if ((c == 64)); then
            # Sample VmRSS during the run (cheap: one /proc read every 250 ms).
            (
                m=0
                while kill -0 "$SERVER_PID" 2>/dev/null; do
                    r=$(vm_field "$SERVER_PID" VmRSS)
                    ((${r:-0} > m)) && m=$r && echo "$m" >"$WORK/rss-max"
                    sleep 0.25
                done
            ) &
            sampler=$!
        fi
        # Warm-up first, so the CPU counted is the timed events' (plus the projector's and
        # the outbox's work behind them, which this process also does).
        # shellcheck disable=SC2086
        "$BENCH_BIN" --url "http://127.0.0.1:$port" --secret "$SECRET" \
            --events "$WARMUP" --concurrency "$c" --warmup 0 --label "$backend-warmup" >/dev/null 2>&1 || true
        local before after
        before=$(cpu_ticks "$SERVER_PID")
        # shellcheck disable=SC2086
        "$BENCH_BIN" --url "http://127.0.0.1:$port" --secret "$SECRET" \
            --database-url "$db_url" --events "$n" --concurrency "$c" \
            --warmup 0 --projector --label "$backend" --json ${BENCH_ARGS:-} | tee "$out" || true
        after=$(cpu_ticks "$SERVER_PID")
        grep '^{' "$out" >>"$RESULTS" || true
        grep "^\[$backend\]" "$out" >>"$SUMMARY" || echo "[$backend] c=$c: bench failed" >>"$SUMMARY"
        cpu_line "[$backend] c=$c" "$before" "$after" "$n" | tee -a "$SUMMARY"
        if [[ -n $sampler ]]; then
            kill "$sampler" 2>/dev/null || true
            wait "$sampler" 2>/dev/null || true
            rss_max=$(cat "$WORK/rss-max" 2>/dev/null || echo "?")
            local hwm
            hwm=$(vm_field "$SERVER_PID" VmHWM)
            local mem="[$backend] server memory: peak VmHWM ${hwm:-?} kB ($(((${hwm:-0} + 512) / 1024)) MiB) after C=64; max sampled VmRSS during C=64 ${rss_max} kB"
            echo "$mem"
            echo "$mem" >>"$SUMMARY"
        fi
    done

    if ((RATE > 0)); then
        # The lag bound: a steady rate, the projector sampled every 100 ms.
        out=$WORK/bench-$backend-rate.txt
        log "$backend: steady $RATE events/s for ${RATE_SECS}s (projector lag)"
        "$BENCH_BIN" --url "http://127.0.0.1:$port" --secret "$SECRET" \
            --database-url "$db_url" --events $((RATE * RATE_SECS)) --concurrency 64 --rate "$RATE" \
            --warmup 0 --projector --label "$backend-rate$RATE" --json | tee "$out" || true
        grep '^{' "$out" >>"$RESULTS" || true
        grep -A14 "^\[$backend-rate" "$out" | grep -E '^\[|lag|drain' >>"$SUMMARY" || echo "[$backend] rate $RATE: bench failed" >>"$SUMMARY"
    fi
    if ((SEARCH == 1)); then
        log "$backend: searching the highest rate with lag p99 <= 1 s"
        search_rate "$backend" "$port" "$db_url" | tee -a "$SUMMARY"
    fi
    if ((BACKLOG > 0)); then
        # The projector alone: a backlog appended in one commit, drained by the running server.
        out=$WORK/bench-$backend-backlog.txt
        log "$backend: projector on a backlog of $BACKLOG events"
        "$BENCH_BIN" --secret "$SECRET" --database-url "$db_url" --backlog "$BACKLOG" \
            --label "$backend" --json | tee "$out" || true
        grep '^{' "$out" >>"$RESULTS" || true
        grep "^\[$backend\] projector" "$out" >>"$SUMMARY" || echo "[$backend] backlog: bench failed" >>"$SUMMARY"
    fi
    local peak
    peak=$(vm_field "$SERVER_PID" VmHWM)
    echo "[$backend] server peak RSS over the whole run (VmHWM): ${peak:-?} kB ($(((${peak:-0} + 512) / 1024)) MiB)" >>"$SUMMARY"

    log "$backend: stopping server (SIGTERM)"
    stop_server
    if grep -qiE 'panick|fatal' "$log_file"; then
        log "$backend: server log mentions panic/fatal; tail:"
        tail -n 20 "$log_file" >&2 || true
    fi
}

if [[ ${BENCH_SKIP_BUILD:-0} != 1 ]]; then
    log "building release binaries"
    cargo build --release --bins
fi
[[ -x $SERVER_BIN ]] || { log "missing $SERVER_BIN"; exit 1; }
[[ -x $BENCH_BIN ]] || { log "missing $BENCH_BIN"; exit 1; }

for backend in $BACKENDS; do
    case $backend in
    sqlite)
        run_backend sqlite "sqlite://$WORK/holdfast.db?mode=rwc"
        ;;
    postgres)
        if setup_postgres; then
            run_backend postgres "$PG_URL"
        else
            log "postgres: skipped (set BENCH_PG_URL or make cluster $PG_VERSION/$PG_CLUSTER available)"
            echo "[postgres] skipped" >>"$SUMMARY"
        fi
        ;;
    *)
        log "unknown backend $backend"
        ;;
    esac
done

echo
echo "==================== holdfast webhook throughput ===================="
echo "host: $(nproc) CPUs, $(uname -sr); events C=1: $EVENTS_C1, others: $EVENTS; warm-up $WARMUP"
cat "$SUMMARY"
echo "JSON results: $RESULTS"
