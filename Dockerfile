# pg-reaper image: node:24-bookworm-slim, built in two stages.
#   build:   all dependencies (TypeScript, esbuild), then the bundle in dist/pg-reaper
#   runtime: production dependencies and the bundle only, run as the unprivileged node user
# scripts/container-test.sh builds and runs it for real (buildah).
ARG NODE_IMAGE=docker.io/library/node:24-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: nothing needs an install script to build (the embedded PostgreSQL binaries of
# the dev dependencies are only for the demo and the tests)
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
COPY scripts/bundle.mjs ./scripts/bundle.mjs
RUN npx tsc -p . --noEmit && node scripts/bundle.mjs

FROM ${NODE_IMAGE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="pg-reaper" \
      org.opencontainers.image.description="PostgreSQL session reaper: terminates idle, idle-in-transaction, blocking and runaway sessions by YAML policy, with Prometheus metrics" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="MIT"
ENV NODE_ENV=production \
    PG_REAPER_CONFIG=/etc/pg-reaper/config.yaml \
    NODE_COMPILE_CACHE=/app/compile-cache
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist/pg-reaper ./dist/pg-reaper
COPY config.example.yaml /etc/pg-reaper/config.yaml
# Fill Node's compile cache at build time (read-only at run time): start-up parses less.
RUN DATABASE_URL=postgres://reaper@127.0.0.1:5432/postgres node dist/pg-reaper/cli.js check >/dev/null \
 && node dist/pg-reaper/cli.js --version >/dev/null && chmod -R a+rX /app/compile-cache
USER node
EXPOSE 9188
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:9188/livez').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"
# node runs as PID 1 directly (no shell, no npm), so SIGTERM reaches pg-reaper, which stops
# cleanly; a 1 MiB young generation keeps the resident set small (BENCHMARKS.md, footprint).
ENTRYPOINT ["node", "--max-semi-space-size=1", "/app/dist/pg-reaper/cli.js"]
CMD ["run"]
