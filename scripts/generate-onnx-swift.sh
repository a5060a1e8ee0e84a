#!/usr/bin/env bash
# Regenerates Sources/TemporalContrast/Export/ONNX/onnx.pb.swift from the committed onnx.proto
# (copied from the `onnx` Python package, 1.23.2). Run once after changing either; the output is
# committed, so builds and CI never need protoc or the plugin (building the plugin takes ~10 min).
#
# Needs protoc (apt: protobuf-compiler). protoc-gen-swift is built from the swift-protobuf checkout
# that SwiftPM resolved for this package, into .build-protoc/ (ignored by git), unless
# PROTOC_GEN_SWIFT names an existing plugin binary.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=Sources/TemporalContrast/Export/ONNX
plugin=${PROTOC_GEN_SWIFT:-}
if [ -z "$plugin" ]; then
  swift package resolve
  swift build -c release --package-path .build/checkouts/swift-protobuf --scratch-path .build-protoc --product protoc-gen-swift
  plugin=$PWD/.build-protoc/release/protoc-gen-swift
fi
protoc --plugin=protoc-gen-swift="$plugin" --proto_path="$dir" \
  --swift_opt=Visibility=Internal --swift_out="$dir" "$dir/onnx.proto"
echo "wrote $dir/onnx.pb.swift" >&2
