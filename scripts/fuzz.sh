#!/usr/bin/env bash
# Builds one fuzz executable as a libFuzzer target and runs it on its corpus.
#   scripts/fuzz.sh command|reply|data|dns [seconds]
# Every module is compiled with libFuzzer's coverage instrumentation and
# AddressSanitizer; libFuzzer's driver is linked without its own main (the
# executable calls LLVMFuzzerRunDriver), in a separate build folder.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:?usage: scripts/fuzz.sh command|reply|data|dns [seconds]}
seconds=${2:-60}
case "$target" in
    command|reply|data) product="fuzz-smtp-$target" ;;
    dns) product="fuzz-dns-message" ;;
    *) echo "unknown fuzz target $target" >&2; exit 2 ;;
esac
runtime=$(dirname "$(dirname "$(command -v swift)")")/lib/clang
no_main=$(find "$runtime" -name 'libclang_rt.fuzzer_no_main-x86_64.a' | head -1)
[ -n "$no_main" ] || { echo "libclang_rt.fuzzer_no_main not found under $runtime" >&2; exit 1; }
HIKYAKU_FUZZ=1 swift build -c debug --product "$product" --scratch-path .build-fuzz \
    -Xswiftc -sanitize=address -Xswiftc -Xfrontend -Xswiftc -sanitize=fuzzer \
    -Xlinker "$no_main" -Xlinker -lstdc++
mkdir -p ".build-fuzz/corpus-$target"
".build-fuzz/debug/$product" -max_total_time="$seconds" ".build-fuzz/corpus-$target" "Fuzz/corpus/$target"
