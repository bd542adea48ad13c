#!/usr/bin/env bash
# scripts/ab.sh OLD_BINARY NEW_BINARY: two builds of the proxy on the shipped rules (decision
# log on), V1 body, three alternating rounds of 8 s after a 2 s warm-up at 64 connections;
# prints req/s, the server's CPU time per request and p99 for each. For telling a change from
# the machine's mood: CPU per request of two binaries measured side by side. Needs the oha that
# scripts/bench.sh installs into target/bench-tools. Port 47951 (and 47952) must be free.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 2 ] || { echo "usage: $0 OLD_BINARY NEW_BINARY" >&2; exit 2; }
OHA=target/bench-tools/bin/oha
[ -x "$OHA" ] || { echo "run scripts/bench.sh once first (it installs oha)" >&2; exit 2; }
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
V1="$WORK/v1.json"
echo '{"imp_uid":"imp_123412341234","merchant_uid":"order-20261201-0001","amount":50000}' >"$V1"
oha() { "$OHA" -c 64 --no-tui --output-format json -m POST -T application/json -D "$V1" "$@" http://127.0.0.1:47951/confirm; }
field() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
for round in 1 2 3; do
  for which in old new; do
    bin=$1; [ "$which" = new ] && bin=$2
    "$bin" serve --rules rules --listen 127.0.0.1:47951 --admin-listen 127.0.0.1:47952 \
      --decision-log "$WORK/decisions.jsonl" 2>"$WORK/$which.log" &
    pid=$!
    for _ in $(seq 100); do curl -sf -o /dev/null 127.0.0.1:47952/readyz && break; sleep 0.05; done
    oha -z 2s >/dev/null 2>&1
    before=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    out=$(oha -z 8s -w 2>/dev/null)
    after=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    n=$(echo "$out" | field 'sum(d["statusCodeDistribution"].values())')
    rps=$(echo "$out" | field 'round(d["summary"]["requestsPerSec"])')
    p99=$(echo "$out" | field 'round(d["latencyPercentiles"]["p99"] * 1000, 3)')
    cpu=$(python3 -c "print(round(($after - $before) / $(getconf CLK_TCK) * 1e6 / $n, 2))")
    echo "round $round $which: $rps req/s, server CPU $cpu us/req, p99 $p99 ms"
    kill -TERM "$pid"
    wait "$pid" || true
    rm -f "$WORK/decisions.jsonl"
  done
done
