#!/usr/bin/env bash
# Install the Debian packages that the tests need (the INDI peers, the MQTT broker and its
# mosquitto_passwd, systemd-analyze for the unit file, a C++ toolchain for the libindiclient
# test client, Debian's chromium and its driver for the page's tests). Installs only what
# is missing; uses sudo when not root.
# Usage: scripts/install-system-deps.sh
set -euo pipefail

packages=(indi-bin libindi-dev mosquitto g++ make pkg-config python3-venv systemd
          chromium chromium-driver)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
        || missing+=("$package")
done
if ((${#missing[@]} == 0)); then
    exit 0
fi
echo "installing Debian packages: ${missing[*]}"
sudo=()
if [[ $(id -u) -ne 0 ]]; then
    sudo=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The tests start their own broker on a free port; the packaged one is not needed running.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet mosquitto 2>/dev/null; then
    "${sudo[@]}" systemctl disable --now mosquitto >/dev/null 2>&1 || true
fi
