# Installs what the build needs and builds the proxy and the benchmark harness in release mode;
# sets `bin` to the directory they are in. Sourced by the benchmark scripts.
#   release_build [quiet]    (quiet: no build output; else the last line of each build)
release_build() {
    scripts/install-deps.sh
    for product in hbone hbone-bench; do
        if [ "${1-}" = quiet ]; then
            swift build -c release --product "$product" >/dev/null
        else
            swift build -c release --product "$product" 2>&1 | tail -n 1
        fi
    done
    bin=$(swift build -c release --show-bin-path)
}
