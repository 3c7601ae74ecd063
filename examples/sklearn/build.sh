#!/usr/bin/env bash
# Build the layer for the function in template.yaml: Python 3.12 on arm64 (Graviton).
# Wheels are downloaded for that target whatever this machine is; lambdaslim pack then
# compresses them into build/layer.zip. Deploy with:  sam deploy --guided
set -euo pipefail
cd "$(dirname "$0")"
TARGET=(--platform manylinux2014_aarch64 --python-version 3.12 --implementation cp --only-binary=:all:)
rm -rf build && mkdir -p build
# The packages the handler imports, packed (extracted into /tmp on first import).
pip install "${TARGET[@]}" --target build/site numpy scikit-learn
# What the layer's python/ folder needs to run the bootstrap on the target: zstandard, filelock.
pip install "${TARGET[@]}" --target build/runtime zstandard filelock
lambdaslim pack build/site -o build/layer.zip --runtime-dir build/runtime
lambdaslim inspect build/layer.zip
