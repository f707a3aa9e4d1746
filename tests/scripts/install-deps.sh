#!/usr/bin/env bash
# Install what berth's build, tests and demo need on Debian 12, as root. Idempotent: a second
# run installs nothing. Package services are not started (policy-rc.d), the tests run their
# own private Ceph and nginx.
set -euo pipefail

PACKAGES=(
  # Ceph: a throwaway cluster for tests, the CLIs, rbd-fuse/rbd-nbd attachers, librbd to link
  ceph-mon ceph-osd ceph-common rbd-fuse rbd-nbd librbd-dev librados-dev
  # block devices and filesystems
  e2fsprogs xfsprogs util-linux fuse3 kmod
  # the ingress side: nginx, and HTTP clients/load for tests and benchmarks
  nginx curl wrk openssl
  # the Kubernetes tests: etcd for the control plane (kube-apiserver & co. are built from Go
  # modules by tests/scripts/build-k8s-tools.sh), iproute2 for the ingress backends' netns
  etcd-server iproute2
  # build
  pkg-config gcc make ca-certificates python3
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}" >&2
  if [ "$(id -u)" != 0 ]; then
    echo "install-deps: run as root (apt-get needs it)" >&2
    exit 1
  fi
  # Never let package scripts start system nginx/ceph services.
  policy=/usr/sbin/policy-rc.d
  created_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"; created_policy=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  [ "$created_policy" = 1 ] && rm -f "$policy"
fi

if ! command -v cargo >/dev/null; then
  [ -x "$HOME/.cargo/bin/cargo" ] || { echo "install-deps: no Rust toolchain (cargo) found" >&2; exit 1; }
fi
echo "install-deps: all packages present" >&2

# The Go tools of the Kubernetes tests (kube-apiserver, csi-sanity, the CSI sidecars), built from
# the Go module proxy at the versions tests/tools pins; cached by version, so a warm run only checks.
t=$(date +%s)
bash "$(dirname "$0")/build-k8s-tools.sh" >/dev/null
echo "install-deps: Go tools ready in $(( $(date +%s) - t )) s" >&2
