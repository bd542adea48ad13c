#!/usr/bin/env bash
# A burst of CPU-heavy scripts against a ruleset without any: the amount-only requests must
# still be answered at once, and the scripted ones by their deadline. Usage:
#   scripts/script-burst.sh [BINARY]      (default: target/release/confirm-proxy)
# Needs oha (scripts/bench.sh installs it into target/bench-tools) and curl; ports 47601-47602.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/release/confirm-proxy}
OHA=target/bench-tools/bin/oha
[ -x "$OHA" ] || { echo "no $OHA: run scripts/bench.sh once, or cargo install oha --root target/bench-tools" >&2; exit 2; }
WORK=$(mktemp -d)
PID= LOAD=
trap 'kill $PID $LOAD 2>/dev/null || true; rm -rf "$WORK"' EXIT
mkdir -p "$WORK/rules/scripts"
cat > "$WORK/rules/heavy.yaml" <<'YAML'
settings: { deadline: 2s }
rules:
  - { name: slow, script: scripts/slow.rhai, reason: x }
YAML
cat > "$WORK/rules/cheap.yaml" <<'YAML'
settings: { deadline: 2s }
rules:
  - { name: amt, amount: { min: 1 }, reason: x }
YAML
# Sorts 9,000 numbers over and over: every run ends at its 50 ms time limit.
cat > "$WORK/rules/scripts/slow.rhai" <<'RHAI'
let a = [];
for i in 0..9000 { a.push(9000 - i); }
loop { let b = a; b.sort(); }
true
RHAI
"$BIN" serve --rules "$WORK/rules" --listen 127.0.0.1:47601 --admin-listen 127.0.0.1:47602 2>/dev/null &
PID=$!
sleep 1
BODY='{"imp_uid":"i","merchant_uid":"o","amount":5000}'
"$OHA" -z 8s -c 64 --no-tui -m POST -H 'content-type: application/json' -d "$BODY" \
    http://127.0.0.1:47601/confirm/heavy > "$WORK/heavy.out" 2>&1 &
LOAD=$!
sleep 1
for _ in $(seq 1 40); do
  curl -s -o /dev/null -w '%{time_total}\n' -X POST -H 'content-type: application/json' \
      -d "$BODY" http://127.0.0.1:47601/confirm/cheap
  sleep 0.1
done | sort -n | awk '{a[NR]=$1} END {printf "amount-only: %d requests, p50 %.4f s, p90 %.4f s, max %.4f s\n", NR, a[int(NR*0.5)], a[int(NR*0.9)], a[NR]}'
wait $LOAD
echo "scripted (2 s deadline):"
grep -E 'Slowest|Average|99.00%|Requests/sec' "$WORK/heavy.out"
