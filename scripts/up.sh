#!/usr/bin/env bash
# One command on a fresh Debian 12 machine (as root): install runc, CNI plugins, iproute2 and
# iptables where missing, install npm dependencies, build, and start berthd in the foreground
# with its embedded defaults (socket /run/berth/berth.sock). Extra arguments go to berthd.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then echo "run as root (berthd manages mounts, namespaces and cgroups)" >&2; exit 1; fi
bash scripts/install-deps.sh
[ -d node_modules ] || npm ci --no-audit --no-fund
npm run build --silent
exec bin/berthd "$@"
