#!/usr/bin/env bash
# Installs berth from this checkout for running a node (as root):
#
#   scripts/install.sh [--prefix /opt/berth] [--bindir /usr/local/bin] [--config /etc/berth/berth.toml]
#                      [--unitdir /etc/systemd/system] [--no-build]
#   scripts/install.sh --uninstall [--prefix /opt/berth] [--force]
#   scripts/install.sh --prune [--prefix /opt/berth]
#
# Builds once, then copies the build (bin/, dist/src, production node_modules) into a new
# versioned directory PREFIX/versions/<version>-<commit>-<time> and points PREFIX/current at it
# (an atomic rename), so a newer install sits beside the running one: restarting berthd is the
# upgrade, and shims of the old build keep running from their own directory. It links berthd,
# berth, berth-shim and containerd-shim-berth-v1 into BINDIR, writes the commented defaults to
# CONFIG if (and only if) no file is there, and installs the systemd unit berthd.service.
#
# Everything it creates is listed in PREFIX/.install-manifest; --uninstall removes exactly
# those (links only while they still point where the install put them, the config and the unit
# only while unchanged, directories only if it created them and they are empty) and nothing
# else. It refuses while processes run from PREFIX (berthd, or shims that outlive it) unless --force.
# --prune removes the versions that are not current and that no process runs from any more.
set -euo pipefail

PREFIX=/opt/berth
BINDIR=/usr/local/bin
CONFIG=/etc/berth/berth.toml
UNITDIR=/etc/systemd/system
BUILD=1
UNINSTALL=0
PRUNE=0
FORCE=0
COMMANDS=(berthd berth berth-shim containerd-shim-berth-v1)

die() { echo "install.sh: $*" >&2; exit 1; }
usage() { sed -n '4,7p' "$0" | sed 's/^# \{0,3\}//' >&2; exit 2; }
abspath() { case "$1" in /*) printf '%s\n' "${1%/}" ;; *) die "$2 must be an absolute path: $1" ;; esac; }

while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) [ $# -ge 2 ] || usage; PREFIX=$(abspath "$2" --prefix); shift 2 ;;
    --bindir) [ $# -ge 2 ] || usage; BINDIR=$(abspath "$2" --bindir); shift 2 ;;
    --config) [ $# -ge 2 ] || usage; CONFIG=$(abspath "$2" --config); shift 2 ;;
    --unitdir) [ $# -ge 2 ] || usage; UNITDIR=$(abspath "$2" --unitdir); shift 2 ;;
    --no-build) BUILD=0; shift ;;
    --uninstall) UNINSTALL=1; shift ;;
    --prune) PRUNE=1; shift ;;
    --force) FORCE=1; shift ;;
    -h|--help) usage ;;
    *) echo "install.sh: unknown argument: $1" >&2; usage ;;
  esac
done
if [ -z "$PREFIX" ] || [ "$PREFIX" = / ]; then die "--prefix must not be /"; fi

MANIFEST="$PREFIX/.install-manifest"
sha() { sha256sum "$1" | cut -d' ' -f1; }
record() { printf '%s\t%s\t%s\n' "$1" "$2" "${3:-}" >>"$MANIFEST"; }

# Processes running code from a directory (default: the prefix): launched from it (or through
# our links), or with one of its native addons mapped.
users_of_prefix() {
  local dir=${1:-$PREFIX} real pid
  real=$(readlink -f "$dir" 2>/dev/null || echo "$dir")
  for pid in /proc/[0-9]*; do
    pid=${pid#/proc/}
    [ "$pid" = "$$" ] && continue
    if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -e "$dir/" -e "$real/" ||
      grep -qF "$real/" "/proc/$pid/maps" 2>/dev/null; then
      echo "$pid"
    fi
  done
}

prune() {
  [ -f "$MANIFEST" ] || die "nothing to prune: no $MANIFEST"
  local cur v busy
  cur=$(readlink "$PREFIX/current" 2>/dev/null || true)
  for v in "$PREFIX"/versions/*/; do
    v=${v%/}
    [ -d "$v" ] || continue
    [ "versions/$(basename "$v")" = "$cur" ] && continue
    # Only trees this install made (the manifest lists them).
    grep -qF "$(printf 'tree\t%s\t' "$v")" "$MANIFEST" || continue
    busy=$(users_of_prefix "$v" | tr '\n' ' ')
    if [ -n "$busy" ]; then echo "keeping $v: still in use (pids: $busy)"; continue; fi
    rm -rf -- "$v"
    echo "removed $v"
  done
}

uninstall() {
  [ -f "$MANIFEST" ] || die "nothing to uninstall: no $MANIFEST"
  if [ "$FORCE" -eq 0 ]; then
    local busy
    busy=$(users_of_prefix | tr '\n' ' ')
    [ -z "$busy" ] || die "processes still run from $PREFIX (pids: $busy); stop berthd and let its pods end first, or pass --force"
  fi
  local seen=$'\n' kind path extra
  # Last entry per path wins (an upgrade re-records the unit and the current link); undo in
  # reverse order, so contents go before the directories that held them.
  while IFS=$'\t' read -r kind path extra; do
    case "$seen" in *$'\n'"$path"$'\n'*) continue ;; esac
    seen+="$path"$'\n'
    case "$kind" in
      tree) rm -rf -- "$path" ;;
      link)
        if [ -L "$path" ] && [ "$(readlink "$path")" = "$extra" ]; then rm -f -- "$path"
        elif [ -e "$path" ] || [ -L "$path" ]; then echo "keeping $path: it no longer points to $extra"; fi ;;
      file)
        if [ -f "$path" ] && [ "$(sha "$path")" = "$extra" ]; then rm -f -- "$path"
        elif [ -e "$path" ]; then echo "keeping $path: changed since it was installed"; fi ;;
      dir)
        [ "$path" = "$PREFIX" ] && rm -f -- "$MANIFEST"
        rmdir -- "$path" 2>/dev/null || { [ -d "$path" ] && echo "keeping $path: not empty"; } || true ;;
      *) echo "install.sh: ignoring manifest line: $kind $path" >&2 ;;
    esac
  done < <(tac "$MANIFEST")
  rm -f -- "$MANIFEST"
  if [ -d /run/systemd/system ] && [ "$UNITDIR" = /etc/systemd/system ]; then systemctl daemon-reload || true; fi
  echo "berth uninstalled from $PREFIX"
}

if [ "$UNINSTALL" -eq 1 ]; then
  uninstall
  exit 0
fi
if [ "$PRUNE" -eq 1 ]; then
  prune
  exit 0
fi

# --- install ---
SRC=$(cd "$(dirname "$0")/.." && pwd)
NODE=$(command -v node) || die "node not found on PATH (Node.js 20 is needed)"
NODE=$(readlink -f "$NODE")
# Refuse before changing anything: a command name or unit already taken by something that is not ours.
declare -A OURS=()
if [ -f "$MANIFEST" ]; then
  while IFS=$'\t' read -r kind path extra; do OURS["$path"]=1; done <"$MANIFEST"
fi
for c in "${COMMANDS[@]}"; do
  t="$BINDIR/$c"
  if { [ -e "$t" ] || [ -L "$t" ]; } && [ -z "${OURS[$t]:-}" ]; then die "$t exists and was not installed here; remove it or choose another --bindir"; fi
done
UNIT="$UNITDIR/berthd.service"
if [ -e "$UNIT" ] && [ -z "${OURS[$UNIT]:-}" ]; then die "$UNIT exists and was not installed here; remove it or choose another --unitdir"; fi

# Create a directory and every missing parent, recording the ones this install created.
mkdirs() {
  local d=$1 missing=()
  while [ ! -d "$d" ]; do missing=("$d" "${missing[@]}"); d=$(dirname "$d"); done
  for d in "${missing[@]}"; do mkdir -m "${2:-0755}" -- "$d"; record dir "$d"; done
}
# The manifest lives in the prefix: create the prefix's missing parents, then the prefix (and record both).
if [ ! -d "$PREFIX" ]; then
  created=()
  d=$PREFIX
  while [ ! -d "$d" ]; do created=("$d" "${created[@]}"); d=$(dirname "$d"); done
  for d in "${created[@]}"; do mkdir -m 0755 -- "$d"; done
  for d in "${created[@]}"; do record dir "$d"; done
fi
touch "$MANIFEST"

cd "$SRC"
if [ "$BUILD" -eq 1 ]; then
  [ -d node_modules ] || npm ci --no-audit --no-fund
  npm run build --silent
fi
[ -f dist/src/bin/berthd.js ] || die "no build in $SRC/dist (run without --no-build)"

VERSION=$("$NODE" -p 'require("./package.json").version')
COMMIT=$(git rev-parse --short=12 HEAD 2>/dev/null || echo nogit)
if [ "$COMMIT" != nogit ] && [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then COMMIT="$COMMIT.dirty"; fi
ID="$VERSION-$COMMIT-$(date -u +%Y%m%dT%H%M%SZ)"
mkdirs "$PREFIX/versions"
n=1; base=$ID
while [ -e "$PREFIX/versions/$ID" ]; do n=$((n + 1)); ID="$base.$n"; done
DEST="$PREFIX/versions/$ID"
STAGE="$PREFIX/versions/.staging-$ID"
rm -rf -- "$STAGE"
trap 'rm -rf -- "$STAGE"' EXIT

echo "installing berth $ID into $DEST"
mkdir -p "$STAGE/dist" "$STAGE/packaging" "$STAGE/scripts"
cp -a bin package.json package-lock.json README.md "$STAGE/"
cp -a scripts/install.sh scripts/uninstall.sh "$STAGE/scripts/"
cp -a dist/src "$STAGE/dist/src"
cp -a packaging/berthd.service "$STAGE/packaging/"
# Production dependencies only: a copy of the build's node_modules (native addons built for
# this node), pruned of dev dependencies. No network needed.
cp -a "$(readlink -f node_modules)" "$STAGE/node_modules"
(cd "$STAGE" && npm prune --omit=dev --offline --no-audit --no-fund --silent)
# The launchers run with the node the addons were built for, whatever PATH says later, and
# keep their node flags (bin/berthd's `env -S node --max-semi-space-size=2`): only the
# interpreter is replaced.
for c in "${COMMANDS[@]}"; do
  sed -i -e "1s|^#!/usr/bin/env -S node |#!/usr/bin/env -S $NODE |" -e "1s|^#!/usr/bin/env node\$|#!$NODE|" "$STAGE/bin/$c"
done
printf '%s\n' "$ID" >"$STAGE/VERSION"
chmod -R go-w "$STAGE"
mv -T -- "$STAGE" "$DEST"
trap - EXIT
record tree "$DEST"

# PREFIX/current → this version, replaced atomically.
ln -sfn "versions/$ID" "$PREFIX/.current.new"
mv -T -- "$PREFIX/.current.new" "$PREFIX/current"
record link "$PREFIX/current" "versions/$ID"

mkdirs "$BINDIR"
for c in "${COMMANDS[@]}"; do
  t="$BINDIR/$c"
  if [ ! -L "$t" ] || [ "$(readlink "$t")" != "$PREFIX/current/bin/$c" ]; then
    ln -sfn "$PREFIX/current/bin/$c" "$t"
    record link "$t" "$PREFIX/current/bin/$c"
  fi
done

if [ -e "$CONFIG" ]; then
  echo "keeping the existing $CONFIG"
else
  mkdirs "$(dirname "$CONFIG")"
  tmp="$CONFIG.install-tmp"
  (umask 077; "$DEST/bin/berthd" --default-config >"$tmp")
  mv -T -- "$tmp" "$CONFIG"
  record file "$CONFIG" "$(sha "$CONFIG")"
  echo "wrote the commented defaults to $CONFIG"
fi

mkdirs "$UNITDIR"
tmp="$UNIT.install-tmp"
sed -e "s|/opt/berth/|$PREFIX/|g" -e "s|/etc/berth/berth.toml|$CONFIG|g" packaging/berthd.service >"$tmp"
chmod 0644 "$tmp"
mv -T -- "$tmp" "$UNIT"
record file "$UNIT" "$(sha "$UNIT")"

if [ -d /run/systemd/system ] && [ "$UNITDIR" = /etc/systemd/system ]; then
  systemctl daemon-reload
  echo "installed $UNIT; start it with: systemctl enable --now berthd (restart it to upgrade)"
else
  echo "installed $UNIT (systemd is not running here: not reloaded)"
fi
echo "berth $ID installed; commands linked in $BINDIR; uninstall with: $0 --uninstall --prefix $PREFIX"
