#!/usr/bin/env bash
# Schemathesis against a running node's /api/v1/openapi.json with an admin token: property-based
# requests to every operation, failing on any 5xx answer and on any answer the document does
# not describe (status, content type, headers, body schema).
# usage: scripts/check-openapi.sh [MAX_EXAMPLES]   (installs schemathesis from PyPI in a venv)
set -euo pipefail
cd "$(dirname "$0")/.."
EXAMPLES=${1:-25}
VENV=${DREAMOS_VENV:-target/schemathesis-venv}
if ! "$VENV/bin/schemathesis" --version >/dev/null 2>&1; then
  python3 -m venv "$VENV" 2>/dev/null || {
    apt-get install -y python3-venv >/dev/null 2>&1 || (apt-get update >/dev/null 2>&1 && apt-get install -y python3-venv >/dev/null 2>&1)
    python3 -m venv "$VENV"
  }
  "$VENV/bin/pip" install -q 'schemathesis>=4.3,<5'
fi
cargo build -q -p dreamos-cli
BIN=${CARGO_TARGET_DIR:-target}/debug/dreamos
DIR=$(mktemp -d)
PORT=$((20000 + RANDOM % 20000))
trap 'kill $NODE 2>/dev/null; wait $NODE 2>/dev/null; rm -rf "$DIR"' EXIT
# Rate limits off: generated requests come fast, and a 429 would hide what they test.
DREAMOS_LOG=warn DREAMOS_RATE_LIMIT_PER_ADDRESS=0 DREAMOS_RATE_LIMIT_PER_TOKEN=0 \
  DREAMOS_SUBMIT_QUOTA_PER_MINUTE=0 "$BIN" --data-dir "$DIR" up --listen "127.0.0.1:$PORT" >"$DIR/up.log" 2>&1 &
NODE=$!
for _ in $(seq 1 300); do grep -q listening "$DIR/up.log" 2>/dev/null && break; sleep 0.1; done
URL="http://127.0.0.1:$PORT"
ADMIN=$(cat "$DIR/admin.token")
CHECKS=not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance
curl -sf -H "Authorization: Bearer $ADMIN" "$URL/api/v1/openapi.json" -o "$DIR/openapi.json"
run() { # token, then schemathesis options
  local token=$1; shift
  "$VENV/bin/schemathesis" run "$DIR/openapi.json" --url "$URL" --header "Authorization: Bearer $token" \
    --checks "$CHECKS" --max-examples "$EXAMPLES" --request-timeout 70 --seed 1 --no-color "$@"
}
echo "== every operation but the event stream, as admin"
# The event stream never ends, so it cannot be fetched to completion; its route is checked by
# the node's tests instead.
run "$ADMIN" --exclude-path /api/v1/events
echo "== the agent protocol, as an agent"
AGENT=$("$BIN" --data-dir "$DIR" --server "$URL" --token "$ADMIN" --json agent create schemathesis --capability noop | sed 's/.*"token":"\([^"]*\)".*/\1/')
run "$AGENT" --include-path-regex '^/agent/v1/' --phases examples,coverage,fuzzing
if grep -q "panicked" "$DIR/up.log"; then
  echo "the node panicked:" >&2
  grep -A5 panicked "$DIR/up.log" >&2
  exit 1
fi
