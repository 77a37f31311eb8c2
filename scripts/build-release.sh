#!/usr/bin/env bash
# Builds the release binary the Containerfile builds (static Swift stdlib) into dist/hbone and
# checks its shared-library dependencies: only libc, libssl, libcrypto, libnghttp2 and what the
# static stdlib needs (libm, libstdc++, libgcc_s, the loader) may remain.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
swift build -c release --static-swift-stdlib --product hbone 2>&1 | tail -n 1
mkdir -p dist
cp "$(swift build -c release --show-bin-path)/hbone" dist/hbone
# Debug information goes; the symbol table stays (it is not loaded into memory): without it the CPU
# profile (/debug/pprof/profile) could name libssl's functions but not hbone's own.
strip --strip-debug dist/hbone
if [ "$(nm dist/hbone 2>/dev/null | grep -c 'HBONEEventLoop')" -eq 0 ]; then
    echo "release check: 0 passed, 1 failed: dist/hbone has no symbol table (the CPU profile could not name its functions)"
    exit 1
fi
# The heap profiler's sampler is the binary's own malloc family: it must be what the libraries call.
exported=$(nm -D --defined-only dist/hbone)
for f in malloc free calloc realloc posix_memalign aligned_alloc; do
    if ! grep -qE " T $f\$" <<<"$exported"; then
        echo "release check: 0 passed, 1 failed: dist/hbone does not export $f (the heap sampler is not linked in)"
        exit 1
    fi
done
allowed='^(linux-vdso|libc|libssl|libcrypto|libnghttp2|libm|libstdc\+\+|libgcc_s|libdl|libpthread|librt|libutil|ld-linux-x86-64|ld-linux-aarch64|libz|libzstd)\.so'
bad=$(ldd dist/hbone | awk '{print $1}' | sed 's#.*/##' | grep -Ev "$allowed" || true)
ldd dist/hbone | sed 's/^/  /'
if [ -n "$bad" ]; then
    echo "release check: 0 passed, 1 failed: unexpected shared libraries: $bad"
    exit 1
fi
dist/hbone --version >/dev/null
echo "release check: 1 passed, 0 failed ($(du -h dist/hbone | cut -f1), dependencies as allowed)"
