#!/usr/bin/env bash
# Build the layer for the function in template.yaml: Python 3.12 on arm64 (Graviton).
# lambdaslim pack resolves the wheels for that target whatever this machine is, prunes tests
# and headers, compiles bytecode, and compresses each distribution with zstd. Then:
#   sam deploy --guided
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p build
lambdaslim pack numpy scikit-learn --python 3.12 --arch arm64 -o build/layer.zip
lambdaslim inspect build/layer.zip
