#!/usr/bin/env bash
# Creates (once) the test-only Python environment: grpcio, grpcio-tools, protobuf and cryptography
# from PyPI in a virtual environment, and Python modules generated from proto/ with grpcio-tools.
# Prints the environment's directory; its python is bin/python, the generated modules are in proto/.
#   scripts/lib/pyenv.sh [DIR]        (default: .build/pyenv)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
dir=${1:-$root/.build/pyenv}
stamp="$dir/.ready-$(cat "$root"/proto/*.proto | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
    mkdir -p "$(dirname "$dir")"
    exec 9>"$dir.lock"
    flock 9
    if [ ! -f "$stamp" ]; then
        [ -x "$dir/bin/python" ] || /usr/bin/python3 -m venv "$dir" >&2
        "$dir/bin/pip" install --quiet --disable-pip-version-check grpcio grpcio-tools protobuf cryptography >&2
        rm -rf "$dir/proto" && mkdir -p "$dir/proto"
        "$dir/bin/python" -m grpc_tools.protoc -I "$root/proto" --python_out="$dir/proto" "$root"/proto/*.proto >&2
        rm -f "$dir"/.ready-*
        touch "$stamp"
    fi
fi
echo "$dir"
