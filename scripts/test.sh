#!/usr/bin/env bash
# Builds abide (Debug, warnings as errors: the `dev` preset, in build/dev) and
# runs every test with ctest. Works from any directory on a fresh Debian 12
# machine: installs the packages it needs first.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# shellcheck source=scripts/deps.sh
source scripts/deps.sh
abide_install_deps

echo "==> Configuring (preset dev: Debug, -DABIDE_WERROR=ON, build/dev)"
cmake --preset dev
echo "==> Building (-j2)"
cmake --build --preset dev
echo "==> Testing (ctest -j2 --output-on-failure)"
log="build/dev/ctest.log"
status=0
ctest --preset dev 2>&1 | tee "$log" || status=$?
echo "==> ctest summary"
sed -n '/% tests passed, /,$p' "$log"
if [ "$status" -ne 0 ]; then
    echo "==> FAILED: ctest exited with status $status (full log: $log)" >&2
fi
exit "$status"
