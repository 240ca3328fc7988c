# snapflow workers and CLI, plus the Temporal CLI (dev server + UI) built the same way as on dev machines.
FROM golang:1.24-bookworm AS temporal
RUN GOFLAGS=-mod=mod go install github.com/temporalio/cli/cmd/temporal@v1.5.1

FROM node:20-bookworm-slim
COPY --from=temporal /go/bin/temporal /usr/local/bin/temporal
# busybox-static: host workers build the offline base image from it; git: golden builds clone repos.
RUN apt-get update && apt-get install -y --no-install-recommends busybox-static git && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
RUN npx tsx scripts/bundle-workflows.ts
ENTRYPOINT ["npx", "tsx"]
CMD ["workers/control.ts"]
