#!/bin/sh
# The cost of classifying a reply (docs/classification.md, "Cost"): every reply
# of the labelled corpus classified 200 times with the shipped rules, then the
# same replies padded to 1 KiB with the kind of text long replies carry (a URL).
#
#     bench/classify.sh      (uses .build/release/hikyaku, or $HIKYAKU_BIN)
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
binary=${HIKYAKU_BIN:-$root/.build/release/hikyaku}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat "$root"/Tests/ClassificationCorpus/*.jsonl > "$work/all.jsonl"
python3 - "$work/all.jsonl" "$work/padded.jsonl" <<'PY'
import json, sys
filler = " For more information see https://postmaster.example.net/smtp-errors?host=mx1.example.net&id=0123456789abcdef"
with open(sys.argv[2], "w") as out:
    for line in open(sys.argv[1], encoding="utf-8"):
        reply = json.loads(line)
        while len(reply["text"].encode()) + len(filler) <= 1024:
            reply["text"] += filler
        out.write(json.dumps(reply, ensure_ascii=False) + "\n")
PY
for corpus in all padded; do
    printf '%s: ' "$corpus"
    "$binary" classify --corpus "$work/$corpus.jsonl" --data-dir "$work/data" --json |
        python3 -c 'import json, sys
r = json.load(sys.stdin)
print("%d replies up to %d bytes: p50 %.1f us, p99 %.1f us, max %.1f us   [target p99 < 20 us]" % (
    r["replies"], r["longestReplyBytes"], r["p50Microseconds"], r["p99Microseconds"], r["maxMicroseconds"]))'
done
