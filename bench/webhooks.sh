#!/usr/bin/env bash
# Events-out figures (docs/performance.md) on the release build:
#   1. webhook fan-out: events/s and relay CPU per event, to a local receiver in batches
#      (targets: ≥ 5,000 events/s, ≤ 0.1 ms CPU per event);
#   2. RSS with 1,000,000 events pending for a dead endpoint (target: < 200 MB);
#   3. the open-tracking endpoint under wrk (targets: ≥ 10,000 requests/s, p99 ≤ 20 ms);
#   4. API mail end to end (accepted, delivered to Postfix's smtp-sink) without and with
#      a webhook receiving every event (target: at most 10% slower).
# No peer has these features over SMTP, so each figure is Hikyaku's own;
# bench/compare.sh MODE=e2e has the SMTP ratio against Postfix with the event log on.
#
#   bench/webhooks.sh            # FANOUT=100000 PENDING=1000000 SECONDS=10 BATCHES=20
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
: "${FANOUT:=100000}" "${PENDING:=1000000}" "${SECONDS_TRACKING:=10}" "${BATCHES:=20}"
command -v wrk >/dev/null || { apt-get install -y -qq wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }; }
export PATH="$PATH:/usr/sbin"
(cd "$ROOT" && swift build -c release --product hikyaku >/dev/null)
BIN="$ROOT/.build/release/hikyaku"
WORK=$(mktemp -d /var/tmp/hikyaku-webhooks.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
for mode in "fanout $FANOUT" "tracking $SECONDS_TRACKING" "e2e $BATCHES" "pending $PENDING"; do
    python3 "$ROOT/bench/webhooks.py" "$BIN" "$WORK" $mode
done
