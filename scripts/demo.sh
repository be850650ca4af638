#!/usr/bin/env bash
# Builds abide in Release (the `release` preset, in build/release) and runs the
# demo, abide_demo. Works from any directory on a fresh Debian 12 machine:
# installs the packages it needs first.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# shellcheck source=scripts/deps.sh
source scripts/deps.sh
abide_install_deps

echo "==> Configuring (preset release: Release, build/release)"
cmake --preset release
echo "==> Building abide_demo (-j2)"
cmake --build --preset release --target abide_demo
echo "==> Running build/release/examples/abide_demo"
exec build/release/examples/abide_demo "$@"
