# pg-reaper image: node:24-bookworm-slim, built in two stages.
#   build:   all dependencies (TypeScript, esbuild), then the bundle in dist/pg-reaper
#   runtime: production dependencies and the bundle only (no dev tooling: no embedded server, no
#            demo, no sources or tests), run as the unprivileged node user
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
# Node's compile cache, filled at build time so that start-up parses less. Node keys the cache's
# directory by uid (v24.x-x64-<hash>-1000), so it is filled as the user that runs the image:
# filled by root, node would not use it ("Cannot create cache directory: permission denied").
# Every verb's code goes in: check, once, and run up to its start line. Then it is made root's
# and read-only: the running process can use the cache but not rewrite the code in it. (What
# npm ci above put there, as root, is of no use to node and goes.)
RUN rm -rf /app/compile-cache && mkdir /app/compile-cache && chown node:node /app/compile-cache
USER node
RUN set -e; warm=$(mktemp -d); \
    printf 'http: { host: 127.0.0.1, port: 0 }\nlogFormat: json\ntargets: [{ name: warm, host: 127.0.0.1, port: 1, user: warm, database: warm, connectTimeout: 1s }]\npolicies: [{ name: warm, maxIdle: 1h }]\n' >"$warm/config.yaml"; \
    node --max-semi-space-size=1 dist/pg-reaper/cli.js --version >/dev/null; \
    node --max-semi-space-size=1 dist/pg-reaper/cli.js check -c "$warm/config.yaml" >/dev/null; \
    node --max-semi-space-size=1 dist/pg-reaper/cli.js once --dry-run -c "$warm/config.yaml" >/dev/null 2>&1 || [ $? = 1 ]; \
    node --max-semi-space-size=1 dist/pg-reaper/cli.js run -c "$warm/config.yaml" >"$warm/run.log" 2>&1 & pid=$!; \
    for _ in $(seq 1 100); do grep -q 'pg-reaper started' "$warm/run.log" && break; sleep 0.1; done; \
    kill -TERM "$pid"; wait "$pid"; rm -rf "$warm"; \
    ls -d /app/compile-cache/v*-1000 >/dev/null
USER root
RUN chown -R root:root /app/compile-cache && chmod -R a+rX,go-w /app/compile-cache
USER node
EXPOSE 9188
# The health check asks /livez over plain HTTP. With a webConfigFile (TLS or basic auth) give the
# probes a port of their own (http.probes.port) and point PG_REAPER_HEALTH_URL at it.
ENV PG_REAPER_HEALTH_URL=http://127.0.0.1:9188/livez
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
  CMD node -e "fetch(process.env.PG_REAPER_HEALTH_URL).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"
# node runs as PID 1 directly (no shell, no npm), so SIGTERM reaches pg-reaper, which stops
# cleanly; a 1 MiB young generation keeps the resident set small (BENCHMARKS.md, footprint).
ENTRYPOINT ["node", "--max-semi-space-size=1", "/app/dist/pg-reaper/cli.js"]
CMD ["run"]
