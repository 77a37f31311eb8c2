#!/usr/bin/env bash
# Installs what the tests need, builds, and runs every test (unit, integration, interop), then the
# sanitizer runs and every fuzz target's corpus replayed under AddressSanitizer.
#   scripts/test.sh                      everything (what CI runs)
#   scripts/test.sh --sanitize address   only: unit and in-memory tests built with AddressSanitizer,
#   scripts/test.sh --sanitize thread    then the integration suite against a sanitized hbone
#   scripts/test.sh --fast               only the plain build and tests
set -euo pipefail
cd "$(dirname "$0")/.."
# Each section's header says when it began (CI has a 30-minute budget: this shows where it goes).
section() { echo "== $* (at $((SECONDS / 60)) min $((SECONDS % 60)) s)"; }
scripts/install-deps.sh
# go tool pprof, the reader operators point at /debug/pprof/profile: the profile test reads our
# profile with it (Debian's golang-go; the benchmarks' Go peer uses the same package).
if ! command -v go >/dev/null; then
    section "installing golang-go"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends golang-go >/dev/null
fi
# The test control plane's Python (grpcio, grpcio-tools, protobuf, cryptography from PyPI) in a
# virtual environment, with modules generated from proto/. The tests fail, never skip, without it.
section "test Python environment: $(scripts/lib/pyenv.sh)"

# Runs swift test with the given arguments; prints failures and the closing line, keeps the status.
run_tests() {
    local log=$1; shift
    swift test --skip-build "$@" 2>&1 | tee "$log" | grep -E "✘|passed after|failed after|Test run|error:|Executed|Sanitizer|SUMMARY" | grep -v "^◇" | tail -n 80
    return "${PIPESTATUS[0]}"
}

sanitized() {
    local san=$1
    case "$san" in address|thread) ;; *) echo "--sanitize address|thread" >&2; exit 2 ;; esac
    section "building with --sanitize=$san (.build/$san)"
    swift build --build-tests --build-path ".build/$san" --sanitize="$san" 2>&1 | grep -E "error|Build" || true
    [ -x ".build/$san/debug/hbone" ] || { echo "sanitized build failed" >&2; exit 1; }
    export LSAN_OPTIONS="suppressions=$PWD/scripts/lsan-suppressions.txt"
    export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1"
    section "unit and in-memory tests under the $san sanitizer"
    # Allocation stacks come from the fast (frame-pointer) unwinder: with fast_unwind_on_malloc=0
    # every malloc walked its stack through DWARF and these tests took 285 s instead of 19 s, with
    # the same findings and the same suppressions matched. For fuller stacks in a report, rerun
    # with ASAN_OPTIONS=fast_unwind_on_malloc=0.
    HBONE_SANITIZED=1 ASAN_OPTIONS="detect_leaks=1" run_tests ".build/test-output-$san-unit.txt" \
        --build-path ".build/$san" --skip HBONEIntegrationTests
    # The proxies under test are the sanitized build; the harness reads their logs for reports
    # (Mesh.stop). Leak checking is off for them: at exit, objects owned by threads still running
    # read as leaks. Memory growth is the soak's question (scripts/soak.sh).
    swift build --build-tests >/dev/null
    section "integration tests against the $san-sanitized hbone"
    HBONE_BINARY="$PWD/.build/$san/debug/hbone" HBONE_SANITIZED=1 ASAN_OPTIONS="detect_leaks=0" TSAN_OPTIONS="halt_on_error=0" \
        run_tests ".build/test-output-$san-integration.txt" --filter HBONEIntegrationTests --skip "BenchHarnessTests|CAToolTests"
}

if [ "${1:-}" = "--sanitize" ]; then
    sanitized "${2:-}"
    exit 0
fi

section "building"
swift build --build-tests 2>&1 | grep -E "error|warning: unre|Compiling|Build" | grep -v Compiling || true
swift build --build-tests >/dev/null
section "running tests"
# Integration suites start real proxies on 127.0.0.0/8 and run serialized within their suite.
run_tests .build/test-output.txt --parallel --num-workers 2
[ "${1:-}" = "--fast" ] && exit 0
section "checking Kubernetes manifests and the release binary"
scripts/check-manifests.sh 2>&1 | grep -E "check:|hbone|error|ERROR" || exit 1
scripts/build-release.sh 2>&1 | grep -E "check:|error" || exit 1
section "building the benchmarks (hbone-bench and the ordo-one micro-benchmarks), so they cannot rot"
# With build-release.sh's flags (static stdlib), so the release modules it built are reused: without
# them every module compiled again (37 s instead of about 3 minutes here).
swift build -c release --static-swift-stdlib --product hbone-bench 2>&1 | grep -E "error|Build" || exit 1
swift build --package-path Benchmarks/Micro 2>&1 | grep -E "error|Build" || exit 1
sanitized address
# Every fuzz target's committed corpus (the seeds and the inputs of past findings) through the
# address-sanitized build: a regression test without a libFuzzer build of its own, which cost
# CI four minutes for ten seconds of fuzzing per target. Fuzzing itself: scripts/fuzz.sh.
section "replaying every fuzz target's corpus under the address sanitizer (scripts/fuzz.sh all SECONDS fuzzes)"
for corpus in Fuzz/corpus/*/; do
    ASAN_OPTIONS=detect_leaks=0 SWIFT_BACKTRACE=enable=no .build/address/debug/hbone-fuzz "$(basename "$corpus")" "$corpus" || exit 1
done
sanitized thread
section "all passed"
