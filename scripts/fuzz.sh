#!/usr/bin/env bash
# Fuzzes one parser of untrusted input with libFuzzer for a bounded time.
#   scripts/fuzz.sh TARGET SECONDS      targets: spiffe socks5 address admin-http config authz-policy h2-server hbone-peer hbone-inbound grpc xds zds certificate dns crl private-key baggage dns-answer
#   scripts/fuzz.sh all SECONDS         each target in turn
# Builds hbone-fuzz with -sanitize=fuzzer,address into .build/fuzz, starts from the committed seeds
# (Fuzz/corpus/TARGET) in a working corpus under .build/fuzz-corpus, and writes any crashing input
# to .build/fuzz-artifacts/TARGET/. Exit status: 0 when nothing was found.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:?usage: scripts/fuzz.sh TARGET|all SECONDS}
seconds=${2:?usage: scripts/fuzz.sh TARGET|all SECONDS}
targets=(spiffe socks5 address admin-http config authz-policy h2-server hbone-peer hbone-inbound grpc xds zds certificate dns crl private-key baggage dns-answer)
if [ "$target" = all ]; then
    for t in "${targets[@]}"; do "$0" "$t" "$seconds"; done
    exit 0
fi
[[ " ${targets[*]} " == *" $target "* ]] || { echo "unknown target $target (${targets[*]})" >&2; exit 2; }
swift build --build-path .build/fuzz -Xswiftc -sanitize=fuzzer,address -Xswiftc -DHBONE_FUZZING --product hbone-fuzz 2>&1 \
    | grep -E "error|Compiling hbone|Build" | grep -v "^\[" || true
binary=.build/fuzz/debug/hbone-fuzz
[ -x "$binary" ] || { echo "fuzz build failed" >&2; exit 1; }
corpus=.build/fuzz-corpus/$target
artifacts=.build/fuzz-artifacts/$target/
# A failing input is reported by the run that found it (and kept in Fuzz/corpus once fixed): one
# left from an earlier run must not fail this one.
rm -rf "$artifacts"
mkdir -p "$corpus" "$artifacts"
cp -n Fuzz/corpus/"$target"/* "$corpus"/ 2>/dev/null || true
echo "== fuzzing $target for ${seconds}s (corpus $corpus, crashes in $artifacts)"
# SWIFT_BACKTRACE=enable=no: on a Swift trap the runtime's backtracer reads the crashed process's
# memory, which ASan reports as a stack-buffer-underflow and the backtracer then hung (23 minutes
# once); libFuzzer's own handler prints the stack and writes the input.
# The whole output (the sanitizer's stack included) stays in a log; the summary lines are shown.
mkdir -p .build/fuzz-logs
log=.build/fuzz-logs/$target.log
HBONE_FUZZ_TARGET=$target ASAN_OPTIONS=detect_leaks=0 SWIFT_BACKTRACE=enable=no "$binary" -max_total_time="$seconds" -max_len=65536 -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$artifacts" "$corpus" > "$log" 2>&1 || true
grep -E "^#[0-9]+ *DONE|stat::number_of_executed_units|ERROR|SUMMARY|Test unit written|panic|Fatal error|precondition" "$log" || true
if ls "$artifacts" | grep -q .; then
    echo "fuzz: $target FOUND a failing input: $(ls "$artifacts") (whole report: $log)" >&2
    exit 1
fi
echo "fuzz: $target clean for ${seconds}s"
