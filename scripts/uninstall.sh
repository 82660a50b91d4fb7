#!/usr/bin/env bash
# Removes what scripts/install.sh installed under a prefix, and nothing else (see install.sh):
#   scripts/uninstall.sh [--prefix /opt/berth] [--force]
exec "$(dirname "$0")/install.sh" --uninstall "$@"
