#!/usr/bin/env bash
# Builds the local control plane's binaries (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl, kwok, helm), the S3-compatible server (versitygw) and the Kueue
# controller (kueue) from their official Go modules at the versions pinned in tools/*/go.mod,
# into the user cache, keyed by a digest of those pins and of this script.
# A fresh clone in another folder finds the same key and reuses the binaries.
# Add-ons (the LeaderWorkerSet controller) are built into the same directory afterwards, each keyed
# on its own module and its own section of this script, so adding or bumping one rebuilds only it.
#
# Prints the directory holding the binaries on stdout; progress goes to stderr.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache_root="${XDG_CACHE_HOME:-$HOME/.cache}/shinsa"

# Versions reported by --version; keep in step with the requires in tools/*/go.mod.
KUBE_VERSION=v1.34.3

# Go's module and build caches live in the same user cache, so CI reuses them too.
export GOMODCACHE="${GOMODCACHE:-$cache_root/go/mod}"
export GOCACHE="${GOCACHE:-$cache_root/go/build}"
export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=local

ADDONS=(lws)
core_inputs() { # this script without its add-on sections, and the other tools' pins
  local dir mods=() sums=()
  for dir in "$here"/*/; do
    dir="${dir%/}"
    [[ " ${ADDONS[*]} " == *" ${dir##*/} "* || ! -f "$dir/go.mod" ]] && continue
    mods+=("$dir/go.mod")
    [[ -f "$dir/go.sum" ]] && sums+=("$dir/go.sum")
  done
  sed '/^# >>> add-on /,/^# <<< add-on /d' "$here/build.sh"
  cat "${mods[@]}" "${sums[@]}"
}
key="$(core_inputs | sha256sum | cut -c1-16)"
bin="$cache_root/bin/$key"
log() { printf '[shinsa tools] %s\n' "$*" >&2; }
started=$SECONDS

kube_ldflags() {
  local major minor pkg flags="-s -w"
  major="${KUBE_VERSION#v}"; major="${major%%.*}"
  minor="${KUBE_VERSION#v*.}"; minor="${minor%%.*}"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
    flags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  echo "$flags"
}

build() { # module-dir output-name package [ldflags]
  local dir="$1" out="$2" pkg="$3" ldflags="${4:--s -w}"
  log "building $out from $pkg ($(( SECONDS - started ))s elapsed)"
  (cd "$here/$dir" && go build -p "${SHINSA_BUILD_JOBS:-2}" -trimpath -ldflags "$ldflags" \
    -o "$partial/$out" "$pkg")
}

module_version() { # module-dir module-path: the version tools/<dir>/go.mod pins
  (cd "$here/$1" && go list -m -f '{{.Version}}' "$2")
}

# >>> add-on lws
# The LeaderWorkerSet controller, and from its module the CRD and the webhook manifests that
# shinsa.devcluster.lws installs, into <bin>/lws/. Its key (in lws/.complete) covers this section
# and tools/lws's pins only.
build_lws() {
  local lws_key dest="$bin/lws" lws_version lws_dir lws_pkg="sigs.k8s.io/lws/pkg/version"
  lws_key="$( { sed -n '/^# >>> add-on lws$/,/^# <<< add-on lws$/p' "$here/build.sh"
                cat "$here/lws/go.mod" "$here/lws/go.sum"; } | sha256sum | cut -c1-16)"
  [[ "$(cat "$dest/.complete" 2>/dev/null)" == "$lws_key" ]] && return 0
  # build() writes into $partial; the EXIT trap removes whatever it names when the script ends.
  partial="$bin/.lws.partial.$$"
  trap 'rm -rf "$partial"' EXIT
  mkdir -p "$partial"
  # Stamped as its Makefile's LD_FLAGS do; the module zip carries no commit, so none is claimed.
  lws_version="$(module_version lws sigs.k8s.io/lws)"
  build lws lws sigs.k8s.io/lws/cmd "-s -w -X $lws_pkg.GitVersion=$lws_version -X $lws_pkg.GitCommit=unknown -X $lws_pkg.BuildDate=1970-01-01T00:00:00Z"
  lws_dir="$(cd "$here/lws" && go list -m -f '{{.Dir}}' sigs.k8s.io/lws)"
  mkdir -p "$partial/config"
  cp -R "$lws_dir/config/crd" "$lws_dir/config/webhook" "$partial/config/"
  echo "$lws_version" > "$partial/VERSION"
  chmod -R u+w "$partial"
  echo "$lws_key" > "$partial/.complete"
  if [[ "$(cat "$dest/.complete" 2>/dev/null)" == "$lws_key" ]]; then
    log "another build finished LeaderWorkerSet first; using it"
    return 0
  fi
  rm -rf "$dest"
  mv -T "$partial" "$dest"
  log "built LeaderWorkerSet $lws_version into $dest ($(( SECONDS - started ))s elapsed)"
}
# <<< add-on lws

if [[ -f "$bin/.complete" ]]; then
  build_lws
  echo "$bin"
  exit 0
fi

# A per-process scratch folder: two builds of the same pins (two clones, CI and a developer)
# must not write into each other's output.
partial="$bin.partial.$$"
trap 'rm -rf "$partial"' EXIT
mkdir -p "$partial"

build etcd etcd go.etcd.io/etcd/server/v3
build kwok kwok sigs.k8s.io/kwok/cmd/kwok
for cmd in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
  build kube "$cmd" "k8s.io/kubernetes/cmd/$cmd" "$(kube_ldflags)"
done
# helm and versitygw also get the versions their own release builds stamp in (assigned first:
# a failing $(...) inside an argument would not stop the script).
helm_pkg="helm.sh/helm/v3/internal/version"
helm_version="$(module_version helm helm.sh/helm/v3)"
versitygw_version="$(module_version s3 github.com/versity/versitygw)"
build helm helm helm.sh/helm/v3/cmd/helm "-s -w -X $helm_pkg.gitTreeState=clean -X $helm_pkg.version=$helm_version"
build s3 versitygw github.com/versity/versitygw/cmd/versitygw "-s -w -X main.Version=$versitygw_version"
# Kueue's release build stamps its version the same way (Makefile's LD_FLAGS); the module zip
# carries no commit, so none is claimed.
kueue_pkg="sigs.k8s.io/kueue/pkg/version"
kueue_version="$(module_version kueue sigs.k8s.io/kueue)"
build kueue kueue sigs.k8s.io/kueue/cmd/kueue "-s -w -X $kueue_pkg.GitVersion=$kueue_version -X $kueue_pkg.GitCommit=unknown -X $kueue_pkg.BuildDate=1970-01-01T00:00:00Z"

# KWOK's own stage definitions at the pinned version, read from its module: nodes become Ready
# and keep a heartbeat, pods become Running/Ready, pods owned by a Job complete.
kwok_dir="$(cd "$here/kwok" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)"
for stage in node/fast/node-initialize node/heartbeat/node-heartbeat \
             pod/fast/pod-ready pod/fast/pod-complete pod/fast/pod-delete; do
  cat "$kwok_dir/kustomize/stage/$stage.yaml"
  echo "---"
done > "$partial/kwok-stages.yaml"

# Kueue's CRDs, their conversion-webhook patches and its webhook configurations at the pinned
# version, read from its module (shinsa.devcluster.kueue installs them), so the manifests always
# match the binary. The module cache is read-only; the copy must be deletable with the build.
kueue_dir="$(cd "$here/kueue" && go list -m -f '{{.Dir}}' sigs.k8s.io/kueue)"
mkdir -p "$partial/kueue-config"
cp -R "$kueue_dir/config/components/crd" "$kueue_dir/config/components/webhook" "$partial/kueue-config/"
echo "$kueue_version" > "$partial/kueue-config/VERSION"
chmod -R u+w "$partial/kueue-config"

touch "$partial/.complete"
if [[ -f "$bin/.complete" ]]; then
  log "another build finished the same pins first; using it"
else
  rm -rf "$bin"
  mv "$partial" "$bin"
fi
build_lws
# Other pins' builds untouched for two weeks are stale (about 0.5 GB each); a warm Go build cache
# rebuilds one in under a minute should it be needed again.
find "$cache_root/bin" -mindepth 1 -maxdepth 1 -type d -mtime +14 ! -path "$bin" -exec rm -rf {} + || true
log "built all binaries in $(( SECONDS - started ))s into $bin"
echo "$bin"
