#!/usr/bin/env bash
# Hikyaku against Postfix in one run, with ../shared/bench/compare.sh
# (interleaved pairs, ratios, checks; its README explains every knob).
#
#   bench/compare.sh                        # durable injection, both only queue (MODE=inject PF_HOLD=hold)
#   CONC=100 bench/compare.sh               # the same with 100 sessions
#   MODE=e2e bench/compare.sh               # end to end: each relay delivers to its own smtp-sink
#
# Hikyaku runs from a release build with a temporary data directory on the
# same file system as Postfix's queue; 127.0.0.0/8 is a trusted network, as
# Postfix's mynetworks is. Every 250 is durable (fsync of the segment and of
# the queue index's WAL) in both relays.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SHARED=${SHARED_BENCH:-$ROOT/../shared/bench}
[ -x "$SHARED/compare.sh" ] || [ -f "$SHARED/compare.sh" ] || { echo "no $SHARED/compare.sh" >&2; exit 1; }

(cd "$ROOT" && swift build -c release --product hikyaku >/dev/null)
BIN="${HIKYAKU_BIN:-$ROOT/.build/release/hikyaku}"
WORK=$(mktemp -d /var/tmp/hikyaku-bench.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
cat > "$WORK/config.json" <<JSON
{
  "hostname": "hikyaku.bench",
  "logLevel": "warning",
  "eventLoopThreads": ${HIKYAKU_EVENT_LOOP_THREADS:-0},
  "delivery": {"enabled": $( [[ ${MODE:-inject} == e2e ]] && echo true || echo false ),
               "smarthost": "127.0.0.1:2601", "allowNonPublicAddresses": true},
  "smtp": {
    "listen": ["127.0.0.1:2600"],
    "tlsListen": [],
    "trustedNetworks": ["127.0.0.0/8"],
    "maxConnectionsPerClient": 1000
  }
}
JSON

export B_NAME=hikyaku B_PORT=2600 B_SINK_PORT=2601
export B_HOLD_START_CMD="exec $BIN serve --config $WORK/config.json --data-dir $WORK/data"
export B_START_CMD="$B_HOLD_START_CMD"
export B_QUEUE_CLEAR_CMD="$BIN queue delete --all --data-dir $WORK/data >/dev/null"
# Empty when `queue list` prints nothing: every recipient delivered.
export B_QUEUE_EMPTY_CMD="test -z \"\$($BIN queue list --data-dir $WORK/data)\""
export MODE=${MODE:-inject} PF_HOLD=${PF_HOLD:-hold}
bash "$SHARED/compare.sh"
