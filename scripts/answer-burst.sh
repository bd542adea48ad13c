#!/usr/bin/env bash
# Bursts of 100 requests at once whose stock API answers each at once with 1 MB of JSON
# (9,000 keys: under the 20,000 values and keys read as JSON), more than two CPUs can parse
# within the 1 s deadline: every answer must still leave by the deadline (the server answers
# by on_error for an evaluation still parsing), and the memory the answers took must come
# back afterwards.
# Usage:
#   scripts/answer-burst.sh [BINARY]     (default: target/release/confirm-proxy)
# Environment: BURSTS (5), PER_BURST (100), PIN=1 to run the proxy on CPU 0 and the upstream
# and clients on CPU 1 (needs taskset), DELAY=0.85 to send each answer that many seconds late,
# so that 100 MB land just before the deadline (0). Needs python3; ports 47611-47613.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/release/confirm-proxy}
BURSTS=${BURSTS:-5} PER_BURST=${PER_BURST:-100}
WORK=$(mktemp -d)
PID= UP=
trap 'kill $PID $UP 2>/dev/null || true; rm -rf "$WORK"' EXIT
PROXY_CPU= OTHER_CPU=
if [ "${PIN:-0}" = 1 ]; then PROXY_CPU="taskset -c 0" OTHER_CPU="taskset -c 1"; fi
mkdir -p "$WORK/rules"
cat > "$WORK/rules/stock.yaml" <<'YAML'
settings: { deadline: 1s, on_error: reject }
upstreams: { shop: { url: "http://127.0.0.1:47613", timeout: 5s } }
rules:
  - name: stock
    fetch: { upstream: shop, path: "/stock/{order_id}" }
    require: 'response.status == 200 && response.body.available >= 1'
    reason: "품절"
YAML
cat > "$WORK/upstream.py" <<'PY'
import asyncio, sys
DELAY = float(sys.argv[1])
BODY = ('{' + ', '.join(f'"key-{i:05}{"k" * 80}": {i}' for i in range(9000)) + ', "available": 5}').encode()
HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(BODY)
async def serve(reader, writer):
    try:
        while await reader.readuntil(b"\r\n\r\n"):
            if DELAY:
                await asyncio.sleep(DELAY)
            writer.write(HEAD + BODY)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    writer.close()
async def main():
    server = await asyncio.start_server(serve, "127.0.0.1", 47613, backlog=1024)
    await server.serve_forever()
asyncio.run(main())
PY
cat > "$WORK/burst.py" <<'PY'
import asyncio, sys
N, ROUND = int(sys.argv[1]), sys.argv[2]
async def one(i):
    r, w = await asyncio.open_connection("127.0.0.1", 47611)
    body = b'{"imp_uid":"i","merchant_uid":"o-%s-%d","amount":5000}' % (ROUND.encode(), i)
    w.write(b"POST /confirm/stock HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body) + body)
    await w.drain()
    await r.read()
    w.close()
async def main():
    await asyncio.gather(*(one(i) for i in range(N)))
asyncio.run(main())
PY
$OTHER_CPU python3 "$WORK/upstream.py" "${DELAY:-0}" & UP=$!
$PROXY_CPU "$BIN" serve --rules "$WORK/rules" --listen 127.0.0.1:47611 --admin-listen 127.0.0.1:47612 \
    --decision-log "$WORK/decisions.jsonl" 2>"$WORK/proxy.log" & PID=$!
sleep 1.5
rss() { awk '/VmRSS/ { print $2 }' "/proc/$PID/status"; }
idle=$(rss) peak=0
for round in $(seq 1 "$BURSTS"); do
    $OTHER_CPU python3 "$WORK/burst.py" "$PER_BURST" "$round"
    now=$(rss); [ "$now" -gt "$peak" ] && peak=$now
    sleep 2
done
sleep 20
after=$(rss)
sleep 1
python3 - "$WORK/decisions.jsonl" <<'PY'
import json, sys
records = [json.loads(l) for l in open(sys.argv[1])]
lat = sorted(r["latency_ms"] for r in records)
read = sum(1 for r in records if r["decision"] == "approve")
print(f"{len(lat)} answers, {read} approved after reading the stock API's; "
      f"{sum(x > 1000 for x in lat)} after the 1 s deadline; "
      f"p50 {lat[len(lat) // 2]:.1f} ms, latest {lat[-1]:.1f} ms (decision log latency_ms)")
PY
echo "RSS: idle ${idle} KiB, ${peak} KiB after the bursts at most, ${after} KiB 20 s after the last"
