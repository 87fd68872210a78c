# Build: compile TypeScript. Optional dependencies (the embedded PostgreSQL binaries that only
# the demo and tests use) are not downloaded.
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=optional --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
COPY scripts/bundle.mjs ./scripts/bundle.mjs
RUN npm run build

# Run: production dependencies and the compiled code only, as the unprivileged node user.
FROM node:24-bookworm-slim
ENV NODE_ENV=production \
    PG_REAPER_CONFIG=/etc/pg-reaper/config.yaml
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist/pg-reaper ./dist/pg-reaper
COPY config.example.yaml /etc/pg-reaper/config.yaml
USER node
EXPOSE 9188
# pg-reaper handles SIGTERM itself: it waits for the run in flight, then exits 0. A 1 MiB young
# generation keeps the resident set small (see BENCHMARKS.md, footprint).
ENTRYPOINT ["node", "--max-semi-space-size=1", "/app/dist/pg-reaper/cli.js"]
CMD ["run"]
