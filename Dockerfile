# snapflow images. Targets (the legacy builder builds every stage before the one asked for, so order matters):
#   control   the control worker, the CLI and the migrations: production dependencies and compiled JavaScript, run
#             by node under tini as the non-root `node` user (`docker build --target control .`)
#   host      (default) the host worker: the same plus QEMU, the guest kernel and the guest agent, made by
#             scripts/provision.sh as on a dev machine; runs vm sandboxes with /dev/kvm or, without it, under TCG
# BASE_IMAGE is Debian bookworm with Node >= 20.19 (the official image where it can be pulled); GO_IMAGE provides
# /usr/local/go for the agent build. Without registry access, scripts/base-image.sh builds both locally:
#   bash scripts/base-image.sh && docker build --network host --build-arg BASE_IMAGE=snapflow-base:bookworm \
#     --build-arg GO_IMAGE=snapflow-base:go --target control -t snapflow-control . && docker build … -t snapflow-host .
# EXTRA_CA_CERTS: PEM text of a CA that npm's registry traffic is signed by (a TLS-inspecting proxy), used by
# `npm ci` only and in no final image: --build-arg EXTRA_CA_CERTS="$(cat /usr/local/share/ca-certificates/*.crt)".
ARG BASE_IMAGE=node:22-bookworm-slim
ARG GO_IMAGE=golang:1.24-bookworm

# Dependencies: one layer per lockfile, so a source change does not reinstall them.
FROM ${BASE_IMAGE} AS deps
ARG EXTRA_CA_CERTS=""
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: `prepare` would build before the sources are here; dependencies ship prebuilt binaries.
RUN printf '%s\n' "$EXTRA_CA_CERTS" > /tmp/ca.pem \
  && NODE_EXTRA_CA_CERTS=/tmp/ca.pem npm ci --ignore-scripts --no-audit --no-fund && rm /tmp/ca.pem

FROM deps AS build
COPY . .
RUN npm run build && node dist/scripts/bundle-workflows.js dist/workflow-bundle.js

FROM ${BASE_IMAGE} AS prod-deps
ARG EXTRA_CA_CERTS=""
WORKDIR /app
COPY package.json package-lock.json ./
RUN printf '%s\n' "$EXTRA_CA_CERTS" > /tmp/ca.pem \
  && NODE_EXTRA_CA_CERTS=/tmp/ca.pem npm ci --omit=dev --ignore-scripts --no-audit --no-fund && rm /tmp/ca.pem && npm cache clean --force

FROM ${BASE_IMAGE} AS control
# tini: PID 1 that forwards signals (a worker drains on SIGTERM) and reaps children.
RUN apt-get update && apt-get install -y --no-install-recommends tini ca-certificates && rm -rf /var/lib/apt/lists/*
WORKDIR /app
ENV NODE_ENV=production SNAPFLOW_WORKFLOW_BUNDLE=/app/dist/workflow-bundle.js SNAPFLOW_METRICS_ADDRESS=0.0.0.0:9464
COPY --from=prod-deps /app/node_modules ./node_modules
COPY package.json package-lock.json ./
COPY client/bin ./client/bin
COPY --from=build /app/dist ./dist
USER node
EXPOSE 9464
# Up, connected to Temporal and polling (workers/healthcheck.ts reads the worker's own metrics endpoint).
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 CMD ["node", "dist/workers/healthcheck.js"]
ENTRYPOINT ["tini", "--", "node"]
CMD ["dist/workers/control.js"]

# The guest kernel and agent and the host's chunk tool, made by the provisioning script (the image needs neither the dev stack nor Temporal).
FROM ${GO_IMAGE} AS go
FROM ${BASE_IMAGE} AS vm-tools
COPY --from=go /usr/local/go /usr/local/go
WORKDIR /src
COPY scripts/provision.sh scripts/
COPY guest/agent guest/agent
COPY tools/chunks tools/chunks
RUN SNAPFLOW_CACHE_DIR=/cache SNAPFLOW_PROVISION_SKIP=dev-packages,vm-packages,temporal,postgres bash scripts/provision.sh \
  && mkdir -p /out && cp -L .tools/vm/vmlinuz .tools/vm/snapflow-agent .tools/vm/snapflow-chunks .tools/vm/kernel-version /out/

FROM control AS host
USER root
COPY scripts/provision.sh /tmp/provision.sh
# QEMU, cpio, zstd, busybox-static and git from the same script, and nothing else (no kernel, agent or chunk tool
# build here).
RUN SNAPFLOW_PROVISION_SKIP=dev-packages,temporal,kernel,agent,chunks,postgres bash /tmp/provision.sh \
  && rm -rf /var/lib/apt/lists/* /tmp/provision.sh /app/.tools
# Where the code looks for them from dist/ (activities/vm/machine.ts); the cache volume holds VM images and saved
# machines, the run directory the VMs' sockets. `kvm` lets the node user open a /dev/kvm passed in (GID from the host:
# set it with `group_add`), and without one the probe falls back to TCG.
COPY --from=vm-tools /out /app/dist/.tools/vm
RUN mkdir -p /home/node/.cache/snapflow /tmp/sfvm && chown -R node:node /home/node/.cache /tmp/sfvm
ENV SNAPFLOW_CACHE_DIR=/home/node/.cache/snapflow SNAPFLOW_VM_RUN_DIR=/tmp/sfvm
VOLUME /home/node/.cache/snapflow
USER node
CMD ["dist/workers/host.js"]
