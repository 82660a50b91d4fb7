#!/usr/bin/env bash
# Installs what berth needs on Debian 12 (as root): runc, CNI plugins, iproute2, iptables, and
# the tools the tests use. Only missing packages are installed.
set -euo pipefail
want=(runc conmon containernetworking-plugins iproute2 iptables util-linux)
if [ "${1:-}" = "--test" ]; then
  want+=(containerd docker-registry skopeo umoci criu zstd apache2-utils busybox-static systemd)
  # kubectl for the streaming tests, unless one (from another package) is already on PATH
  command -v kubectl >/dev/null || want+=(kubernetes-client)
fi
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
