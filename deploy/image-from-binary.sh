#!/usr/bin/env bash
# Builds the cachekeeper image around a binary built outside Docker: no Rust image is pulled
# and no crate is downloaded (offline hosts, air-gapped CI, a binary you already trust).
#
#   cargo build --release --locked
#   deploy/image-from-binary.sh target/release/cachekeeper cachekeeper:latest
#
# The Dockerfile's BINARY stage is replaced by an image holding only this binary and the
# state and socket dirs it expects; the rest (user, volume, healthcheck, stop signal) is the
# Dockerfile's own. The runtime base (RUNTIME_IMAGE, default the Dockerfile's distroless
# Debian 12) must be pullable or present, and the binary must need no newer glibc than it
# has (2.36: build on Debian 12, or set RUNTIME_IMAGE to a base that matches your build host).
# DOCKER_HOST and the docker context choose the engine, as for any docker command.
set -euo pipefail
# The Dockerfile uses cache mounts: BuildKit builds it (and skips the unused build stage).
export DOCKER_BUILDKIT=${DOCKER_BUILDKIT:-1}

if (($# < 1 || $# > 2)); then
  echo "usage: $0 BINARY [TAG]   (TAG defaults to cachekeeper:latest)" >&2
  exit 2
fi
binary=$1
tag=${2:-cachekeeper:latest}
repo=$(cd "$(dirname "$0")/.." && pwd)
[[ -f $binary && -x $binary ]] || {
  echo "$binary: not an executable file (build it first: cargo build --release --locked)" >&2
  exit 2
}

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
root=$ctx/out/root
mkdir -p "$root/usr/local/bin" "$root/var/lib/cachekeeper" "$root/run/cachekeeper"
chmod 1777 "$root/var/lib/cachekeeper" "$root/run/cachekeeper"
cp "$binary" "$root/usr/local/bin/cachekeeper"
printf 'FROM scratch\nCOPY out /out\n' > "$ctx/Dockerfile"
stage=cachekeeper-binary:$$
docker build -q -t "$stage" "$ctx" > /dev/null
trap 'rm -rf "$ctx"; docker rmi "$stage" > /dev/null 2>&1 || true' EXIT
args=(--build-arg "BINARY=$stage")
[[ -n ${RUNTIME_IMAGE:-} ]] && args+=(--build-arg "RUNTIME_IMAGE=$RUNTIME_IMAGE")
docker build -q "${args[@]}" -t "$tag" "$repo" > /dev/null
echo "$tag"
