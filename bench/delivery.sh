#!/usr/bin/env bash
# Delivery figures with absolute targets (docs/performance.md):
#   1. latency from the 250 to the remote 250 at a steady 200 msg/s (bench/latency.py);
#   2. RSS with Q messages (default 100,000) queued for an unreachable destination;
#   3. time from restart to listening with them queued;
#   4. time to drain them once the destination answers (`queue retry`).
#
#   bench/delivery.sh            # Q=100000 RATE=200 SECONDS=30
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
: "${Q:=100000}" "${RATE:=200}" "${SECONDS_AT_RATE:=30}"
(cd "$ROOT" && swift build -c release --product hikyaku >/dev/null)
BIN="$ROOT/.build/release/hikyaku"
WORK=$(mktemp -d /var/tmp/hikyaku-delivery.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
SMTP_SOURCE=$(command -v smtp-source || echo /usr/sbin/smtp-source)
SMTP_SINK=$(command -v smtp-sink || echo /usr/sbin/smtp-sink)

config() { # config DESTINATION_PORT
    cat > "$WORK/config.json" <<JSON
{"hostname": "hikyaku.bench", "logLevel": "warning",
 "delivery": {"smarthost": "127.0.0.1:$1", "allowNonPublicAddresses": true},
 "smtp": {"listen": ["127.0.0.1:2700"], "tlsListen": [], "trustedNetworks": ["127.0.0.0/8"], "maxConnectionsPerClient": 1000}}
JSON
}
start() { # start: runs the relay (RELAY=pid), waits for its "listening" line (STARTED_IN=seconds)
    local begin; begin=$(date +%s.%N)
    : > "$WORK/out"
    "$BIN" serve --config "$WORK/config.json" --data-dir "$WORK/data" > "$WORK/out" 2>>"$WORK/err" &
    RELAY=$!; PIDS+=("$RELAY")
    until grep -q "listening smtp " "$WORK/out" 2>/dev/null; do sleep 0.005; done
    STARTED_IN=$(echo "$(date +%s.%N) - $begin" | bc)
}
stop() { kill -TERM "$RELAY"; wait "$RELAY" || true; }
pending() { python3 -c "
import sqlite3; db = sqlite3.connect('file:$WORK/data/spool/queue.sqlite?mode=ro', uri=True)
print(db.execute(\"SELECT COUNT(*) FROM recipient WHERE state IN ('queued', 'deferred')\").fetchone()[0])"; }
attempted() { python3 -c "
import sqlite3; db = sqlite3.connect('file:$WORK/data/spool/queue.sqlite?mode=ro', uri=True)
print(db.execute(\"SELECT COUNT(*) FROM recipient WHERE attempts > 0\").fetchone()[0])"; }

echo "# delivery bench $(date -u +%FT%TZ) cpus=$(nproc) Q=$Q RATE=$RATE"

# 1. Latency at a steady rate.
config 2701
start
python3 "$ROOT/bench/latency.py" 2700 2701 "$RATE" "$SECONDS_AT_RATE"
stop
rm -rf "$WORK/data"

# 2. Q messages for a destination that refuses connections.
config 2702
start
"$SMTP_SOURCE" -s 50 -m "$Q" -l 2048 -f bench@sender.example -t user@sink.example 127.0.0.1:2700
until [ "$(attempted)" -ge "$Q" ]; do sleep 1; done
echo "queued=$(pending) rss_kb=$(awk '/VmRSS/ {print $2}' /proc/$RELAY/status) rss_peak_kb=$(awk '/VmHWM/ {print $2}' /proc/$RELAY/status)"

# 3. Restart with them queued.
stop
start
echo "restart_to_listening_s=$STARTED_IN"
echo "rss_after_restart_kb=$(awk '/VmRSS/ {print $2}' /proc/$RELAY/status)"

# 4. The destination comes back.
"$SMTP_SINK" -c -u nobody -m 1024 127.0.0.1:2702 1024 > "$WORK/sink" 2>/dev/null &
PIDS+=($!)
sleep 0.3
begin=$(date +%s.%N)
"$BIN" queue retry --data-dir "$WORK/data" >/dev/null
until [ "$(pending)" -eq 0 ]; do sleep 0.2; done
drain=$(echo "$(date +%s.%N) - $begin" | bc)
delivered=$(tr '\r' '\n' < "$WORK/sink" | tail -1 | sed 's/.*mesg=\([0-9]*\).*/\1/')
echo "drain_s=$drain drain_rate=$(echo "$Q / $drain" | bc) sink_count=$delivered rss_peak_kb=$(awk '/VmHWM/ {print $2}' /proc/$RELAY/status)"
stop
