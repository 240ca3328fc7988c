#!/usr/bin/env bash
# Installs what snapflow needs on a fresh Debian machine. Idempotent, and quiet when already done.
#   - Debian packages: docker.io (dockerd + client), docker-registry, apache2-utils (htpasswd), busybox-static,
#     docker-compose (CI checks docker-compose.yml with it)
#     qemu-system-x86, qemu-utils, cpio, zstd, fakeroot and e2fsprogs for vm sandboxes; stress-ng for the load modes of chaos and bench;
#     chromium for the console's browser tests
#   - the vm guest: Debian's cloud kernel unpacked into the cache (never installed into /boot) and the guest
#     agent built from guest/agent, both linked into .tools/vm, and the host's vm state chunker from tools/chunks
#   - Temporal CLI (dev server + UI) built from source, cached per machine, copied into .tools/bin
#   - the local PostgreSQL started when it is installed but stopped
#   - the system user snapflow-vm whose groups QEMU runs with under a root worker (in group kvm when the host has one)
# Image builds (Dockerfile) run it as root without sudo and skip what the image does not need:
#   SNAPFLOW_PROVISION_SKIP=dev-packages,temporal,postgres   (comma-separated parts: dev-packages — the dev stack's
#   Docker, registry, compose and promtool —, vm-packages, vm-user, temporal, kernel, agent, chunks, postgres)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
temporal_version=v1.5.1 # later tags carry replace directives and fail with go install
cache=${SNAPFLOW_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/snapflow}
tools="$root/.tools/bin"
say() { echo "provision: $*" >&2; }
skip() { [[ ",${SNAPFLOW_PROVISION_SKIP:-}," == *",$1,"* ]]; }

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
if ! skip dev-packages; then
  command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
  [ -x /usr/bin/docker ] || missing+=(docker.io)
  command -v docker-registry >/dev/null 2>&1 || missing+=(docker-registry)
  command -v htpasswd >/dev/null 2>&1 || missing+=(apache2-utils)
  command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
  command -v promtool >/dev/null 2>&1 || missing+=(prometheus) # tests check ops/prometheus rules with it
  command -v stress-ng >/dev/null 2>&1 || missing+=(stress-ng) # npm run chaos -- --load, npm run bench -- vmload
  [ -x /usr/bin/chromium ] || missing+=(chromium)                  # the console's browser tests
fi
# What a host worker runs: the offline base image (busybox), golden builds' clones (git), vm sandboxes.
if ! skip vm-packages; then
  dpkg -s busybox-static >/dev/null 2>&1 || missing+=(busybox-static)
  command -v git >/dev/null 2>&1 || missing+=(git)
  command -v qemu-system-x86_64 >/dev/null 2>&1 || missing+=(qemu-system-x86)
  command -v cpio >/dev/null 2>&1 || missing+=(cpio)
  command -v zstd >/dev/null 2>&1 || missing+=(zstd)
  command -v qemu-img >/dev/null 2>&1 || missing+=(qemu-utils) # a vm's disk overlay
  command -v fakeroot >/dev/null 2>&1 || missing+=(fakeroot)   # an image's owners and modes, shown to mke2fs only
  command -v mke2fs >/dev/null 2>&1 || missing+=(e2fsprogs)    # an image's root disk (mke2fs -d)
fi
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Temporal CLI: project-local copy of a per-machine cache; the first build compiles for minutes.
cached="$cache/temporal-$temporal_version"
if skip temporal; then
  :
elif [ ! -x "$tools/temporal" ] || ! cmp -s "$tools/temporal" "$cached" 2>/dev/null; then
  if [ ! -x "$cached" ]; then
    export PATH="$PATH:/usr/local/go/bin:$HOME/go/bin"
    command -v go >/dev/null 2>&1 || { say "Go is required to build the Temporal CLI (install Go >= 1.23)"; exit 1; }
    say "building Temporal CLI $temporal_version from source (first time only, several minutes)"
    mkdir -p "$cache/gobin"
    GOBIN="$cache/gobin" GOFLAGS=-mod=mod go install "github.com/temporalio/cli/cmd/temporal@$temporal_version"
    mv "$cache/gobin/temporal" "$cached"
  fi
  mkdir -p "$tools"
  cp "$cached" "$tools/temporal"
fi

# vm guest kernel: the versioned package behind linux-image-cloud-amd64, unpacked with dpkg -x into the cache.
vm="$root/.tools/vm"
mkdir -p "$vm"
if ! skip kernel; then
  # Resolved once (apt-cache takes seconds); SNAPFLOW_KERNEL_REFRESH=1 picks up a newer package.
  kernel_version=$(cat "$vm/kernel-version" 2>/dev/null || true)
  if [ -z "$kernel_version" ] || [ -n "${SNAPFLOW_KERNEL_REFRESH:-}" ] || [ ! -f "$cache/kernel/$kernel_version/boot/vmlinuz-$kernel_version" ]; then
    # No package lists yet (a fresh image): apt-cache fails, and the update below fetches them.
    kernel_pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9].*\)$/\1/p' | head -n 1 || true)
    if [ -z "$kernel_pkg" ]; then
      as_root apt-get update -qq
      kernel_pkg=$(apt-cache depends linux-image-cloud-amd64 | sed -n 's/^ *Depends: \(linux-image-[0-9].*\)$/\1/p' | head -n 1)
    fi
    kernel_version=${kernel_pkg#linux-image-}
  fi
  [ -n "$kernel_version" ] || { say "cannot resolve linux-image-cloud-amd64 (apt-cache depends)"; exit 1; }
  kernel_dir="$cache/kernel/$kernel_version"
  if [ ! -f "$kernel_dir/boot/vmlinuz-$kernel_version" ]; then
    say "fetching the vm guest kernel $kernel_pkg (unpacked into $kernel_dir, not installed)"
    download=$(mktemp -d)
    (cd "$download" && apt-get download -qq "$kernel_pkg" 2>/dev/null || { as_root apt-get update -qq && apt-get download -qq "$kernel_pkg"; })
    rm -rf "$kernel_dir.tmp" && mkdir -p "$kernel_dir.tmp"
    dpkg -x "$download"/linux-image-*.deb "$kernel_dir.tmp"
    rm -rf "$download" "$kernel_dir" && mv "$kernel_dir.tmp" "$kernel_dir"
  fi
  ln -sfn "$kernel_dir/boot/vmlinuz-$kernel_version" "$vm/vmlinuz"
  [ "$(cat "$vm/kernel-version" 2>/dev/null)" = "$kernel_version" ] || echo "$kernel_version" >"$vm/kernel-version"
fi

# The unprivileged user whose group and groups a root host worker runs QEMU (and the decompressor of a restore)
# with, each machine under a uid of its own (SNAPFLOW_VM_UIDS): no home, no shell, no password. SNAPFLOW_VM_USER=uid:gid
# names another instead. /dev/kvm is usually root:kvm 0660.
if ! skip vm-user && [ "$(id -u)" -eq 0 ]; then
  id -u snapflow-vm >/dev/null 2>&1 || useradd --system --user-group --no-create-home --home-dir /nonexistent \
    --shell /usr/sbin/nologin snapflow-vm
  if getent group kvm >/dev/null && ! id -nG snapflow-vm | tr ' ' '\n' | grep -qx kvm; then usermod -aG kvm snapflow-vm; fi
fi

# vm guest agent: a static Go binary (stdlib only), cached per source hash.
if ! skip agent; then
  agent_hash=$(cat "$root"/guest/agent/go.mod "$root"/guest/agent/*.go | sha256sum | cut -c1-16)
  agent="$cache/agent/$agent_hash/snapflow-agent"
  if [ ! -x "$agent" ]; then
    export PATH="$PATH:/usr/local/go/bin:$HOME/go/bin"
    command -v go >/dev/null 2>&1 || { say "Go is required to build the vm guest agent (install Go >= 1.22)"; exit 1; }
    say "building the vm guest agent"
    mkdir -p "$(dirname "$agent")"
    (cd "$root/guest/agent" && CGO_ENABLED=0 GOTOOLCHAIN=local go build -trimpath -ldflags='-s -w' -o "$agent.tmp" .)
    mv "$agent.tmp" "$agent"
  fi
  ln -sfn "$agent" "$vm/snapflow-agent"
fi

# vm state chunker (host side: zstd and SEEK_DATA, which Node lacks): Go with one module, pinned by the committed
# go.sum and fetched through the Go proxy on the first build; cached per source hash like the agent.
if ! skip chunks; then
  chunks_hash=$(cat "$root"/tools/chunks/go.mod "$root"/tools/chunks/go.sum "$root"/tools/chunks/*.go | sha256sum | cut -c1-16)
  chunks="$cache/chunks/$chunks_hash/snapflow-chunks"
  if [ ! -x "$chunks" ]; then
    export PATH="$PATH:/usr/local/go/bin:$HOME/go/bin"
    command -v go >/dev/null 2>&1 || { say "Go is required to build the vm chunk tool (install Go >= 1.22)"; exit 1; }
    say "building the vm chunk tool"
    mkdir -p "$(dirname "$chunks")"
    (cd "$root/tools/chunks" && CGO_ENABLED=0 GOTOOLCHAIN=local go build -mod=readonly -buildvcs=false -trimpath -ldflags='-s -w' -o "$chunks.tmp" .)
    mv "$chunks.tmp" "$chunks"
  fi
  ln -sfn "$chunks" "$vm/snapflow-chunks"
fi

# PostgreSQL: only the machine's own cluster, and only when DATABASE_URL points at it (the default).
if ! skip postgres && [[ "${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/}" =~ @(127\.0\.0\.1|localhost)(:5432)?/ ]] \
  && command -v pg_isready >/dev/null 2>&1 && ! pg_isready -q -h 127.0.0.1 -p 5432; then
  say "starting the local PostgreSQL cluster"
  as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start
fi
