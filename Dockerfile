# snapflow workers and CLI, plus the Temporal CLI (dev server + UI) built the same way as on dev machines.
#   build:   compiles the TypeScript (npm ci runs `npm run build`) and bundles the workflows
#   final:   production dependencies and compiled JavaScript only, run by node under tini, as a non-root user
FROM golang:1.24-bookworm AS temporal
RUN GOFLAGS=-mod=mod go install github.com/temporalio/cli/cmd/temporal@v1.5.1

FROM node:22-bookworm-slim AS build
WORKDIR /app
COPY . .
RUN npm ci --no-audit --no-fund && node dist/scripts/bundle-workflows.js dist/workflow-bundle.js

FROM node:22-bookworm-slim
COPY --from=temporal /go/bin/temporal /usr/local/bin/temporal
# tini: PID 1 that forwards signals and reaps children; busybox-static: host workers build the offline base
# image from it; git: golden builds clone repos.
RUN apt-get update && apt-get install -y --no-install-recommends tini busybox-static git && rm -rf /var/lib/apt/lists/*
WORKDIR /app
ENV NODE_ENV=production SNAPFLOW_WORKFLOW_BUNDLE=/app/dist/workflow-bundle.js
COPY package.json package-lock.json ./
# --ignore-scripts: `prepare` would build again (that needs the dev tools); dependencies ship prebuilt binaries.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY client/bin ./client/bin
# /data: the Temporal dev server's database in docker-compose.yml (a named volume takes this owner).
RUN mkdir -p /data && chown node:node /data
USER node
ENTRYPOINT ["tini", "--", "node"]
CMD ["dist/workers/control.js"]
