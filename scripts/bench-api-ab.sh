#!/usr/bin/env bash
# The API benchmark (scripts/bench-api.sh) on an earlier build and on this one, alternately in
# the same session, so that a change is measured side by side with what it replaced.
# usage: scripts/bench-api-ab.sh REV [ROUNDS] [SECONDS] [CONNECTIONS]
#   REV: the earlier commit (built in a temporary worktree, sharing this target dir's deps).
set -euo pipefail
cd "$(dirname "$0")/.."
REV=${1:?usage: scripts/bench-api-ab.sh REV [ROUNDS] [SECONDS] [CONNECTIONS]}
ROUNDS=${2:-3}
SECONDS_RUN=${3:-10}
CONNS=${4:-64}
TARGET=${CARGO_TARGET_DIR:-$PWD/target}
OLD=$(mktemp -d)
trap 'git worktree remove --force "$OLD/src" >/dev/null 2>&1 || true; rm -rf "$OLD"' EXIT
git worktree add -f "$OLD/src" "$REV" >/dev/null
(cd "$OLD/src" && CARGO_TARGET_DIR="$TARGET" cargo build --release -q -p dreamos-cli)
cp "$TARGET/release/dreamos" "$OLD/dreamos-before"
# Both trees name the same workspace crates: newer sources make cargo rebuild them here.
find crates -name '*.rs' -exec touch {} +
cargo build --release -q -p dreamos-cli
cp "$TARGET/release/dreamos" "$OLD/dreamos-after"
for round in $(seq 1 "$ROUNDS"); do
  for which in before after; do
    echo "== round $round: $which ($([ "$which" = before ] && echo "$REV" || git rev-parse --short HEAD))"
    DREAMOS_BIN="$OLD/dreamos-$which" scripts/bench-api.sh "$SECONDS_RUN" "$CONNS" | tail -n 4 | head -n 3
  done
done
