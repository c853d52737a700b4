#!/usr/bin/env bash
# Installs Debian packages that pip cannot provide, those named as arguments:
#   ffmpeg              the 5.1 build whose 8 fps frames equal the released LLP frames (make setup)
#   slurm-wlm, munge    a single-node SLURM for the cluster-profile test (make test)
#   chromium            headless Chromium for the HTML-report test (make test)
#
# Idempotent: packages already present are left alone. As root, missing ones are
# installed (one `apt-get update`, then one `apt-get install`). As any other user
# it only says what is missing and exits 0; the tests that need those programs
# then skip with a reason naming them (without Debian's ffmpeg, the one imageio-ffmpeg
# ships is used, and the workflow warns that frames differ slightly from the released ones).
set -euo pipefail

packages=("$@")

missing=()
for pkg in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "install_system_deps: not root; missing Debian packages: ${missing[*]}" >&2
    echo "install_system_deps: tests that need them will be skipped" >&2
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_system_deps: no apt-get; missing packages: ${missing[*]} (tests needing them will skip)" >&2
    exit 0
fi

echo "install_system_deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
