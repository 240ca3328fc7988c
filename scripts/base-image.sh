#!/usr/bin/env bash
# Builds the base image the Dockerfile starts FROM without pulling from any image registry: a Debian bookworm
# minbase root made by debootstrap from the Debian mirror, plus this machine's Node (the binary and its npm),
# imported into the engine DOCKER_HOST names. Where the official image can be pulled, skip this and build with
#   docker build --build-arg BASE_IMAGE=node:22-bookworm-slim .
#
#   bash scripts/base-image.sh [tag]       # default tag: snapflow-base:bookworm (the BASE_IMAGE to build with)
#
# It also imports this machine's Go toolchain (/usr/local/go, or the `go` on PATH) as snapflow-base:go, the GO_IMAGE
# the guest agent is built with (Debian's own Go is older than the agent needs).
# Needs root (debootstrap), debootstrap and a Node >= 20.19 on PATH. The root filesystem is cached per Node
# version in the snapflow cache, so a second run only imports it again.
set -euo pipefail
tag=${1:-snapflow-base:bookworm}
mirror=${SNAPFLOW_DEBIAN_MIRROR:-http://deb.debian.org/debian}
cache=${SNAPFLOW_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/snapflow}
say() { echo "base-image: $*" >&2; }

[ "$(id -u)" -eq 0 ] || { say "run as root (debootstrap needs it)"; exit 1; }
command -v debootstrap >/dev/null 2>&1 || { say "install debootstrap (apt-get install debootstrap)"; exit 1; }
node_bin=$(readlink -f "$(command -v node)")
node_version=$("$node_bin" --version)
npm_dir=$(cd "$(dirname "$(readlink -f "$(command -v npm)")")/.." && pwd) # …/node_modules/npm
tarball="$cache/base-image/bookworm-node-$node_version-v2.tar"

if [ ! -f "$tarball" ]; then
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  say "debootstrap bookworm (minbase) from $mirror"
  debootstrap --variant=minbase bookworm "$work/root" "$mirror" >"$work/debootstrap.log" 2>&1 \
    || { tail -n 20 "$work/debootstrap.log" >&2; exit 1; }
  say "adding Node $node_version and npm $("$node_bin" "$npm_dir/bin/npm-cli.js" --version)"
  install -m 0755 "$node_bin" "$work/root/usr/local/bin/node"
  mkdir -p "$work/root/usr/local/lib/node_modules"
  cp -a "$npm_dir" "$work/root/usr/local/lib/node_modules/npm"
  ln -sfn ../lib/node_modules/npm/bin/npm-cli.js "$work/root/usr/local/bin/npm"
  ln -sfn ../lib/node_modules/npm/bin/npx-cli.js "$work/root/usr/local/bin/npx"
  # What the official image has too: the apt lists are not kept, a `node` user (uid 1000) exists.
  chroot "$work/root" /usr/sbin/useradd --uid 1000 --user-group --create-home --shell /bin/bash node
  find "$work/root/var/lib/apt/lists" -maxdepth 1 -type f -delete # apt needs lists/partial to stay
  rm -rf "$work/root/var/cache/apt/"*.bin "$work/root/var/cache/apt/archives/"*.deb
  mkdir -p "$(dirname "$tarball")"
  tar -C "$work/root" --numeric-owner -cf "$tarball.tmp" .
  mv "$tarball.tmp" "$tarball"
fi

say "importing $tarball as $tag"
docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["node"]' \
  "$tarball" "$tag" >/dev/null
say "$tag ready ($(docker image inspect --format '{{.Size}}' "$tag" | awk '{ printf "%.0f MB", $1 / 1e6 }'))"

goroot=$( (PATH="$PATH:/usr/local/go/bin" go env GOROOT) 2>/dev/null || true)
if [ -n "$goroot" ] && [ -x "$goroot/bin/go" ]; then
  say "importing Go $("$goroot/bin/go" env GOVERSION) from $goroot as snapflow-base:go"
  # The toolchain alone, at /usr/local/go: a stage to COPY it from, never a stage to run.
  tar -C "$goroot/.." --transform "s,^$(basename "$goroot"),usr/local/go," -cf - "$(basename "$goroot")" \
    | docker import --change 'ENV PATH=/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' - snapflow-base:go >/dev/null
else
  say "no Go toolchain found: build with --build-arg GO_IMAGE=golang:1.24-bookworm where it can be pulled"
fi
