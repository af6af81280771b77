#!/usr/bin/env bash
# Authenticated reads and task submissions over HTTP on loopback, with wrk as the load
# generator (on the same machine), beside unauthenticated GET /healthz as the reference.
# usage: scripts/bench-api.sh [SECONDS] [CONNECTIONS]   (needs wrk: apt-get install wrk)
#        DREAMOS_BIN=path/to/dreamos scripts/bench-api.sh ...   (measure that binary instead,
#        e.g. an earlier build beside this one: scripts/bench-api-ab.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_RUN=${1:-10}
CONNS=${2:-64}
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
if [ -z "${DREAMOS_BIN:-}" ]; then
  cargo build --release -q -p dreamos-cli
fi
BIN=${DREAMOS_BIN:-target/release/dreamos}
DIR=$(mktemp -d)
PORT=$((20000 + RANDOM % 20000))
trap 'kill $NODE 2>/dev/null; wait $NODE 2>/dev/null; rm -rf "$DIR"' EXIT
# Rate limits off: this measures the API, not the limiter (which allows 20,000 requests/s
# per address by default).
DREAMOS_LOG=error DREAMOS_RATE_LIMIT_PER_ADDRESS=0 DREAMOS_RATE_LIMIT_PER_TOKEN=0 \
  DREAMOS_SUBMIT_QUOTA_PER_MINUTE=0 "$BIN" --data-dir "$DIR" up --listen "127.0.0.1:$PORT" --agents 0 >"$DIR/up.log" &
NODE=$!
for _ in $(seq 1 100); do grep -q listening "$DIR/up.log" 2>/dev/null && break; sleep 0.1; done
URL="http://127.0.0.1:$PORT"
ADMIN=$(cat "$DIR/admin.token")
TOKEN=$("$BIN" --data-dir "$DIR" --server "$URL" --json token create --role operator | sed 's/.*"token":"\([^"]*\)".*/\1/')
"$BIN" --data-dir "$DIR" --server "$URL" --token "$ADMIN" task submit noop >/dev/null
cat >"$DIR/submit.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"kind":"noop","payload":{}}'
wrk.headers["Content-Type"] = "application/json"
LUA
run() { # label, then wrk arguments
  local label=$1; shift
  local out; out=$(wrk -t2 -c"$CONNS" -d"${SECONDS_RUN}s" --latency "$@")
  local rps p50 p99
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p50=$(echo "$out" | awk '$1=="50%" {print $2}')
  p99=$(echo "$out" | awk '$1=="99%" {print $2}')
  local errors; errors=$(echo "$out" | awk '/Non-2xx/ {print $5}')
  printf "%-44s %12s %10s %10s %8s\n" "$label" "$rps" "$p50" "$p99" "${errors:-0}"
}
echo "dreamos API on loopback, wrk -t2 -c$CONNS for ${SECONDS_RUN}s each, $(nproc) cores shared with wrk"
printf "%-44s %12s %10s %10s %8s\n" "" "requests/s" "p50" "p99" "non-2xx"
run "reference: GET /healthz (no auth)" "$URL/healthz"
run "GET /api/v1/tasks/1 (authenticated read)" -H "Authorization: Bearer $TOKEN" "$URL/api/v1/tasks/1"
run "POST /api/v1/tasks (submit, audited)" -H "Authorization: Bearer $TOKEN" -s "$DIR/submit.lua" "$URL/api/v1/tasks"
echo "tasks stored: $("$BIN" --data-dir "$DIR" --server "$URL" --token "$ADMIN" --json status | sed 's/.*"queued":\([0-9]*\).*/\1/') queued"
