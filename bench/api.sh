#!/usr/bin/env bash
# HTTP API intake figures (docs/performance.md), on the release build with
# delivery off (only acceptance is measured; every 202 is durable):
#   1. personalised batches: POST /v1/messages with 1,000 recipients each, a
#      Mustache subject, text and HTML per recipient (target ≥ 20,000 recipients/s);
#   2. single-message sends at 50 concurrent keep-alive clients: requests/s and latency.
# Postfix has no HTTP API, so there is no peer run here; bench/compare.sh
# has the SMTP intake ratio on the same spool.
#
#   bench/api.sh                 # REQUESTS=60 BATCH_CLIENTS=4 SECONDS_SINGLE=15 CLIENTS=50
#   DKIM=rsa bench/api.sh        # the same with every message DKIM-signed (rsa, ed25519,
#                                # or "rsa ed25519": both signatures on every message)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
: "${REQUESTS:=60}" "${BATCH_CLIENTS:=4}" "${SECONDS_SINGLE:=15}" "${CLIENTS:=50}"
(cd "$ROOT" && swift build -c release --product hikyaku >/dev/null)
BIN="$ROOT/.build/release/hikyaku"
WORK=$(mktemp -d /var/tmp/hikyaku-api.XXXXXX)
RELAY=
cleanup() { [ -n "$RELAY" ] && kill "$RELAY" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

# bench.example is in no DNS, so domain verification (domains.requireVerified) is off.
cat > "$WORK/config.json" <<JSON
{"hostname": "hikyaku.bench", "logLevel": "warning", "delivery": {"enabled": false},
 "api": {"listen": "127.0.0.1:2800"}, "admin": {"listen": ""}, "domains": {"requireVerified": false},
 "smtp": {"listen": ["127.0.0.1:0"], "tlsListen": []}}
JSON
run() { # run MODE AMOUNT CLIENTS: a fresh data directory per measurement
    rm -rf "$WORK/data"
    "$BIN" account create bench --domain bench.example --data-dir "$WORK/data" >/dev/null
    for algorithm in ${DKIM:-}; do
        "$BIN" domain add bench.example --account bench --algorithm "$algorithm" --data-dir "$WORK/data" >/dev/null
    done
    TOKEN=$("$BIN" apikey create --account bench --scope send --json --data-dir "$WORK/data" |
            python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])')
    "$BIN" serve --config "$WORK/config.json" --data-dir "$WORK/data" > "$WORK/out" 2>>"$WORK/err" &
    RELAY=$!
    until grep -q "listening api " "$WORK/out" 2>/dev/null; do sleep 0.01; done
    local before; before=$(awk '{print $14 + $15}' /proc/$RELAY/stat)
    python3 "$ROOT/bench/api_load.py" "$1" 2800 "$TOKEN" "$2" "$3"
    local after; after=$(awk '{print $14 + $15}' /proc/$RELAY/stat)
    echo "  server_cpu_s=$(echo "($after - $before) / $(getconf CLK_TCK)" | bc -l | cut -c1-6) rss_peak_kb=$(awk '/VmHWM/ {print $2}' /proc/$RELAY/status)"
    kill -TERM "$RELAY"; wait "$RELAY" || true; RELAY=
}

echo "# api bench $(date -u +%FT%TZ) cpus=$(nproc) commit=$(cd "$ROOT" && git rev-parse --short HEAD) dkim=${DKIM:-none}"
run batch "$REQUESTS" "$BATCH_CLIENTS"
run single "$SECONDS_SINGLE" "$CLIENTS"
