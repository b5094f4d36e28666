#!/usr/bin/env bash
# Builds one fuzz executable as a libFuzzer target and runs it on its corpus.
#   scripts/fuzz.sh TARGET [seconds] [--merge]
#   scripts/fuzz.sh --replay            # every committed corpus through the normal build (no libFuzzer)
# TARGET: command reply data proxy dns header feedback mime dkim api sigv4 mustache tracking csv
# Every module is compiled with libFuzzer's coverage instrumentation and
# AddressSanitizer; libFuzzer's driver is linked without its own main (the
# executable calls LLVMFuzzerRunDriver), in a separate build folder. New
# inputs go to .build-fuzz/corpus-TARGET; --merge then adds the ones that
# reach new coverage to Fuzz/corpus/TARGET, the corpus kept in the repository.
# Leak detection is off: LeakSanitizer reports the process-lifetime globals of
# the Swift runtime and of swift-crypto as leaks.
set -euo pipefail
cd "$(dirname "$0")/.."

product_of() {
    case "$1" in
        command|reply|data) echo "fuzz-smtp-$1" ;;
        proxy) echo "fuzz-proxy-header" ;;
        dns) echo "fuzz-dns-message" ;;
        header|feedback|mime|dkim|sigv4|mustache|tracking|csv) echo "fuzz-$1" ;;
        api) echo "fuzz-api-json" ;;
        *) echo "unknown fuzz target $1" >&2; exit 2 ;;
    esac
}

if [ "${1:-}" = "--replay" ]; then
    # The corpora through the ordinary debug build: each input must run without a trap.
    bin=$(swift build --show-bin-path)
    for target in command reply data proxy dns header feedback mime dkim api sigv4 mustache tracking csv; do
        product=$(product_of "$target")
        files=(Fuzz/corpus/"$target"/*)
        printf 'replaying %4d inputs through %s\n' "${#files[@]}" "$product"
        printf '%s\0' "${files[@]}" | xargs -0 -n 500 "$bin/$product"
    done
    exit 0
fi

target=${1:?usage: scripts/fuzz.sh TARGET [seconds] [--merge] | --replay}
seconds=${2:-60}
product=$(product_of "$target")
runtime=$(dirname "$(dirname "$(command -v swift)")")/lib/clang
no_main=$(find "$runtime" -name 'libclang_rt.fuzzer_no_main-x86_64.a' | head -1)
[ -n "$no_main" ] || { echo "libclang_rt.fuzzer_no_main not found under $runtime" >&2; exit 1; }
HIKYAKU_FUZZ=1 swift build -c debug --product "$product" --scratch-path .build-fuzz \
    -Xswiftc -sanitize=address -Xswiftc -Xfrontend -Xswiftc -sanitize=fuzzer \
    -Xlinker "$no_main" -Xlinker -lstdc++
mkdir -p ".build-fuzz/corpus-$target" ".build-fuzz/artifacts-$target"
ASAN_OPTIONS=detect_leaks=0 ".build-fuzz/debug/$product" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 -detect_leaks=0 \
    -artifact_prefix=".build-fuzz/artifacts-$target/" ".build-fuzz/corpus-$target" "Fuzz/corpus/$target"
if [ "${3:-}" = "--merge" ]; then
    ASAN_OPTIONS=detect_leaks=0 ".build-fuzz/debug/$product" -merge=1 "Fuzz/corpus/$target" ".build-fuzz/corpus-$target"
fi
