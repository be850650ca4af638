# Sourced by scripts/demo.sh and scripts/test.sh: installs the Debian 12
# packages abide builds with, only those that are missing, saying which.
# Runs apt-get as root, or through sudo when not root and sudo exists.

ABIDE_DEPS=(g++ cmake ninja-build pkg-config libboost-context-dev liblmdb-dev libfmt-dev nlohmann-json3-dev catch2)

# Extra packages may be named: abide_install_deps clang libclang-rt-14-dev
abide_install_deps() {
    local missing=() pkg wanted=("${ABIDE_DEPS[@]}" "$@")
    for pkg in "${wanted[@]}"; do
        if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q '^install ok installed$'; then
            missing+=("$pkg")
        fi
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        echo "==> Dependencies: all ${#wanted[@]} packages already installed"
        return 0
    fi
    local as_root=()
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1; then
            as_root=(sudo)
        else
            echo "error: missing packages: ${missing[*]}; run as root or install sudo" >&2
            return 1
        fi
    fi
    echo "==> Installing missing packages: ${missing[*]}"
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
}
