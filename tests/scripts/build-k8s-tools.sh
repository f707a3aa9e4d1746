#!/usr/bin/env bash
# Build the Go tools the Kubernetes tests run, at the versions pinned in tests/tools/:
#   go.mod     kube-apiserver, kube-controller-manager, kubectl (k8s.io/kubernetes + staging replaces)
#   tools.txt  csi-sanity and the CSI sidecars (each built inside its own module)
# Each binary lands in ${BERTH_TOOLS_CACHE:-/var/cache/berth/tools}/<name>-<version>; one already
# there is not built again. The snapshot CRDs land in <cache>/volume-snapshot-crds-<version>/.
# Go's own module and build caches stay where go puts them (a warm run only links).
# Prints the cache dir on stdout last; everything else goes to stderr.
# Arguments, if any, name the only tools to build (e.g. `csi-sanity`).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
tools=$root/tests/tools
cache=${BERTH_TOOLS_CACHE:-/var/cache/berth/tools}
export PATH=$PATH:/usr/local/go/bin
export GOFLAGS=-buildvcs=false GOWORK=off GOTOOLCHAIN=local
command -v go >/dev/null || { echo "build-k8s-tools: no Go toolchain (go) found" >&2; exit 1; }
mkdir -p "$cache"
start=$(date +%s)
built=() cached=()
wanted() { [ ${#only[@]} = 0 ] || [[ " ${only[*]} " == *" $1 "* ]]; }
only=("$@")

# Atomic install: a build interrupted half way leaves no binary under the final name.
install_bin() { # tmp final
  chmod 0755 "$1" && mv -f "$1" "$2"
}

# The control plane, from this module (its go.mod pins k8s.io/kubernetes).
kube_version=$(cd "$tools" && go list -m -f '{{.Version}}' k8s.io/kubernetes)
# The version the binaries report (/version, kubectl version), as Kubernetes' release build sets
# it (hack/lib/version.sh); without it they say v0.0.0-master. Only the link step sees -X.
minor=${kube_version#v1.}; minor=${minor%%.*}
kube_ldflags=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  kube_ldflags+=" -X $pkg.gitVersion=$kube_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  kube_ldflags+=" -X $pkg.gitTreeState=clean"
done
for name in kube-apiserver kube-controller-manager kubectl; do
  wanted "$name" || continue
  out=$cache/$name-$kube_version
  if [ -x "$out" ]; then cached+=("$name"); continue; fi
  echo "build-k8s-tools: building $name $kube_version" >&2
  (cd "$tools" && nice -n 10 go build -ldflags="$kube_ldflags" -o "$out.tmp.$$" "k8s.io/kubernetes/cmd/$name")
  install_bin "$out.tmp.$$" "$out"
  built+=("$name")
done

# The CSI tools, each inside a writable copy of its own module (the module cache is read-only):
# upstream's go.mod and go.sum decide every dependency, as in upstream's release build.
module_dir() { # module version
  (cd / && go mod download -json "$1@$2") | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p'
}
while read -r name module version pkg; do
  case "$name" in ''|'#'*) continue ;; esac
  wanted "$name" || continue
  out=$cache/$name-$version
  if [ -x "$out" ]; then cached+=("$name"); continue; fi
  echo "build-k8s-tools: building $name $version" >&2
  src=$(module_dir "$module" "$version")
  [ -n "$src" ] || { echo "build-k8s-tools: cannot download $module@$version" >&2; exit 1; }
  work=$(mktemp -d /tmp/berth-go-build.XXXXXX)
  cp -r "$src/." "$work/" && chmod -R u+w "$work"
  # A replace by a local path names a nested module, which the module zip leaves out
  # (external-snapshotter's ./client): take that module's release at the same version.
  (cd "$work" && go mod edit -json | python3 -c '
import json, sys
for r in json.load(sys.stdin).get("Replace") or []:
    new = r["New"]
    if new["Path"].startswith("./") and "Version" not in new:
        print(r["Old"]["Path"])
') | while read -r local_mod; do
    (cd "$work" && go mod edit -replace "$local_mod=$local_mod@$version")
  done
  (cd "$work" && nice -n 10 go build -mod=mod -o "$out.tmp.$$" "./$pkg") || {
    rm -rf "$work"; exit 1; }
  rm -rf "$work"
  install_bin "$out.tmp.$$" "$out"
  built+=("$name")
done < "$tools/tools.txt"

# The VolumeSnapshot and VolumeGroupSnapshot CRDs (the standard install has both), from the snapshotter's client module at the snapshotter's version.
snap_version=$(awk '$1 == "snapshot-controller" { print $3 }' "$tools/tools.txt")
crds=$cache/volume-snapshot-crds-$snap_version
if [ ! -d "$crds" ]; then
  src=$(module_dir github.com/kubernetes-csi/external-snapshotter/client/v8 "$snap_version")
  mkdir -p "$crds.tmp.$$"
  cp "$src"/config/crd/*snapshot.storage.k8s.io_*.yaml "$crds.tmp.$$/"
  chmod -R u+w "$crds.tmp.$$"
  mv "$crds.tmp.$$" "$crds"
fi

echo "build-k8s-tools: built [${built[*]}], cached [${cached[*]}] in $(( $(date +%s) - start )) s ($cache)" >&2
echo "$cache"
