#!/usr/bin/env bash
# Installs what the tests need, builds, and runs every test (unit, integration, interop).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
echo "== building"
swift build --build-tests 2>&1 | grep -E "error|warning: unre|Compiling|Build" | grep -v Compiling || true
swift build --build-tests >/dev/null
echo "== running tests"
# Integration suites start real proxies on 127.0.0.0/8 and run serialized within their suite.
swift test --skip-build --parallel --num-workers 2 2>&1 | tee .build/test-output.txt | grep -E "✘|passed after|failed after|Test run|error:|Executed" | grep -v "^◇" | tail -n 80
status=${PIPESTATUS[0]}
[ "$status" -eq 0 ] || exit "$status"
echo "== checking Kubernetes manifests and the release binary"
scripts/check-manifests.sh 2>&1 | grep -E "check:|hbone|error|ERROR" || exit 1
scripts/build-release.sh 2>&1 | grep -E "check:|error" || exit 1
echo "== building the benchmarks (hbone-bench and the ordo-one micro-benchmarks), so they cannot rot"
swift build -c release --product hbone-bench 2>&1 | grep -E "error|Build" || exit 1
swift build --package-path Benchmarks/Micro 2>&1 | grep -E "error|Build" || exit 1
