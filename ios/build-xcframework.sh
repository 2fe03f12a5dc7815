#!/usr/bin/env bash
# Builds what the Swift package needs, on macOS with Xcode:
#   ios/build/RoundtripFFI.xcframework   static libroundtrip_ffi.a for iOS devices,
#                                        the iOS simulator (arm64 + x86_64) and
#                                        Apple-silicon macOS, with header + module map
#   ios/Sources/Roundtrip/Generated/     the Swift bindings
#
# Usage: ios/build-xcframework.sh            (from any directory)
# Kept to bash 3.2, the bash that macOS ships.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
build="$here/build"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
lib="libroundtrip_ffi.a"

if [[ "$(uname -s)" != "Darwin" ]]; then
    echo "error: building the xcframework needs macOS with Xcode" >&2
    exit 1
fi
for tool in cargo xcodebuild lipo; do
    command -v "$tool" >/dev/null || { echo "error: $tool not found" >&2; exit 1; }
done

device="aarch64-apple-ios"
simulators="aarch64-apple-ios-sim x86_64-apple-ios"
mac="aarch64-apple-darwin"
if command -v rustup >/dev/null; then
    rustup target add $device $simulators $mac
fi

# The C code inside (ring, for one) is compiled by the cc crate, which reads these.
export IPHONEOS_DEPLOYMENT_TARGET="15.0"
export MACOSX_DEPLOYMENT_TARGET="12.0"

cd "$root"

# 1. One static library per target. Only the staticlib crate type is built: the
#    cdylib is of no use on iOS and would double the (fat LTO) link time.
for target in $device $simulators $mac; do
    cargo rustc -p roundtrip-ffi --lib --release --target "$target" --crate-type staticlib
done

# 2. The Swift sources, header and module map, read from a host build.
"$root/scripts/generate-bindings" --release --language swift

# 3. The simulator slices share one platform in the xcframework, so they are merged.
rm -rf "$build"
mkdir -p "$build/ios-simulator"
lipo -create \
    "$target_dir/aarch64-apple-ios-sim/release/$lib" \
    "$target_dir/x86_64-apple-ios/release/$lib" \
    -output "$build/ios-simulator/$lib"

# 4. Headers go one directory down (Headers/RoundtripFFI/module.modulemap): clang
#    still finds the module by name there, and an app that links several
#    xcframeworks does not get two files called Headers/module.modulemap.
include="$here/Sources/RoundtripFFI/include"
headers="$build/headers"
mkdir -p "$headers/RoundtripFFI"
cp "$include/RoundtripFFI.h" "$include/module.modulemap" "$headers/RoundtripFFI/"

xcodebuild -create-xcframework \
    -library "$target_dir/$device/release/$lib" -headers "$headers" \
    -library "$build/ios-simulator/$lib" -headers "$headers" \
    -library "$target_dir/$mac/release/$lib" -headers "$headers" \
    -output "$build/RoundtripFFI.xcframework"

echo "built $build/RoundtripFFI.xcframework"
