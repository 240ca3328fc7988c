#!/usr/bin/env bash
# Installs what snapflow needs on a fresh Debian machine. Idempotent, and quiet when already done.
#   - Debian packages: docker.io (dockerd + client), docker-registry, apache2-utils (htpasswd), busybox-static,
#     docker-compose (CI checks docker-compose.yml with it)
#   - Temporal CLI (dev server + UI) built from source, cached per machine, copied into .tools/bin
#   - the local PostgreSQL started when it is installed but stopped
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
temporal_version=v1.5.1 # later tags carry replace directives and fail with go install
cache=${SNAPFLOW_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/snapflow}
tools="$root/.tools/bin"
say() { echo "provision: $*" >&2; }

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
[ -x /usr/bin/docker ] || missing+=(docker.io)
command -v docker-registry >/dev/null 2>&1 || missing+=(docker-registry)
command -v htpasswd >/dev/null 2>&1 || missing+=(apache2-utils)
dpkg -s busybox-static >/dev/null 2>&1 || missing+=(busybox-static)
command -v git >/dev/null 2>&1 || missing+=(git)
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Temporal CLI: project-local copy of a per-machine cache; the first build compiles for minutes.
cached="$cache/temporal-$temporal_version"
if [ ! -x "$tools/temporal" ] || ! cmp -s "$tools/temporal" "$cached" 2>/dev/null; then
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

# PostgreSQL: only the machine's own cluster, and only when DATABASE_URL points at it (the default).
if [[ "${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/}" =~ @(127\.0\.0\.1|localhost)(:5432)?/ ]] \
  && command -v pg_isready >/dev/null 2>&1 && ! pg_isready -q -h 127.0.0.1 -p 5432; then
  say "starting the local PostgreSQL cluster"
  as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start
fi
