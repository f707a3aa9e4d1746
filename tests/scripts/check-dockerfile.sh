#!/usr/bin/env bash
# Check the Dockerfile's runtime stages as far as this machine allows (no Docker engine here):
#  1. each stage's package list resolves on Debian 12 (apt-get install --simulate);
#  2. every shared library the binary links, or loads at run time ($DLOPEN sonames: berth-csi's
#     controller dlopens librados/librbd), is shipped by a package of that stage's closure
#     (or by Debian's essential base);
#  3. every program the binary runs is shipped by that closure;
#  4. the binaries start (--help) with only those libraries.
# Usage: check-dockerfile.sh [TARGET_DIR]   (default: target/debug; release works too)
set -euo pipefail
cd "$(dirname "$0")/../.."
target=${1:-target/debug}
fail=0

stage_packages() { # the apt-get install list of stage $1
  awk -v stage="$1" '
    /^FROM / { in_stage = ($0 ~ (" AS " stage "$")) }
    in_stage && /apt-get install/ { grab = 1 }
    in_stage && grab {
      line = $0; gsub(/\\$/, "", line); n = split(line, w, /[ \t]+/)
      for (i = 1; i <= n; i++) if (w[i] ~ /^[a-z0-9][a-z0-9.+-]+$/ && w[i] != "apt-get" && w[i] != "install" && w[i] != "rm" ) print w[i]
      if ($0 !~ /\\$/ || $0 ~ /&&/ && $0 !~ /install/) grab = 0
    }' Dockerfile | grep -vE '^(update|y|no-install-recommends|var|lib|apt|lists)$' | sort -u
}

closure() { # the packages the list pulls in (Depends/PreDepends, recursively) + essentials
  { apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
      --no-replaces --no-enhances "$@" 2>/dev/null | grep -v '^ ' | grep -v '^<'
    dpkg-query -W -f='${Package} ${Essential}\n' | awk '$2 == "yes" { print $1 }'
    echo libc6; echo libgcc-s1; echo base-files
  } | sed 's/:.*//' | sort -u
}

pkg_of() { # the package that ships file $1 (Debian 12 is usrmerged: try /x and /usr/x)
  local f=$1 real; real=$(readlink -f "$f")
  for c in "$real" "$f" "${real#/usr}" "${f#/usr}" "/usr$real"; do
    dpkg -S "$c" 2>/dev/null | head -1 | cut -d: -f1 && return 0
  done
  return 0
}

check_stage() { # stage binary programs...
  local stage=$1 bin=$2; shift 2
  local pkgs; mapfile -t pkgs < <(stage_packages "$stage")
  echo "== stage '$stage': ${pkgs[*]}"
  if apt-get install --simulate -qq "${pkgs[@]}" >/dev/null 2>&1; then
    echo "   packages resolve on $(. /etc/os-release; echo "$PRETTY_NAME")"
  else
    echo "   FAIL: apt-get install --simulate ${pkgs[*]}"; fail=1
  fi
  local have; have=$(closure "${pkgs[@]}")
  [ -x "$target/$bin" ] || { echo "   FAIL: $target/$bin not built"; fail=1; return; }
  local lib pkg
  while read -r lib; do
    pkg=$(pkg_of "$lib")
    if [ -z "$pkg" ] || ! grep -qx "$pkg" <<<"$have"; then
      echo "   FAIL: $bin links $lib (package '${pkg:-?}') which the stage does not install"; fail=1
    else
      echo "   lib  $(basename "$lib") <- $pkg"
    fi
  done < <(ldd "$target/$bin" | awk '/=>/ && $3 ~ /^\// { print $3 }'
           for so in ${DLOPEN:-}; do
             ldconfig -p | awk -v so="$so" '$1 == so { print $NF; exit }' | grep . \
               || echo "/nonexistent/$so"
           done)
  local prog path
  for prog in "$@"; do
    path=$(command -v "$prog" || true)
    pkg=""; [ -n "$path" ] && pkg=$(pkg_of "$path")
    if [ -z "$pkg" ] || ! grep -qx "$pkg" <<<"$have"; then
      echo "   FAIL: $bin runs $prog (package '${pkg:-?}') which the stage does not install"; fail=1
    else
      echo "   exec $prog <- $pkg"
    fi
  done
  "$target/$bin" --help >/dev/null && echo "   $bin --help runs"
}

DLOPEN="librados.so.2 librbd.so.1" check_stage csi berth-csi rbd rbd-fuse rbd-nbd losetup blkid mount umount mkfs.ext4 mkfs.xfs \
  e2fsck resize2fs dumpe2fs xfs_growfs blockdev fusermount3 modprobe
check_stage ingress berth-ingress nginx
[ "$fail" = 0 ] && echo "dockerfile check: OK" || { echo "dockerfile check: FAILED"; exit 1; }
