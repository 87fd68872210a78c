#!/usr/bin/env bash
# scripts/container-test.sh: builds the image from the Dockerfile with buildah and runs the
# image's own entrypoint against a PostgreSQL on this machine's loopback. Rerunnable.
#   - the stand-in base image (no image registry here) is built by ../shared/tools/node-base-image.sh when missing
#   - a victim session is reaped, /metrics answers, the process runs as uid 1000,
#     the config is mounted read-only, SIGTERM gives exit 0; the image size is printed
# Needs root, buildah and podman; run `npm run build` first (the test server comes from dist/).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
IMAGE=localhost/pg-reaper:test
BASE=docker.io/library/node:24-bookworm-slim
VERSION=$(node -p 'require("./package.json").version')
work=$(mktemp -d)
ctr=""
server_pid=""
cleanup() {
  [ -n "$ctr" ] && buildah rm "$ctr" >/dev/null 2>&1 || true
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "container-test: FAIL: $*" >&2; exit 1; }
step() { echo "--- $*"; }

if ! buildah images --format '{{.Name}}:{{.Tag}}' | grep -qx "$BASE"; then
  step "building the stand-in base image $BASE"
  bash "$REPO/../shared/tools/node-base-image.sh"
fi

step "buildah build (--isolation chroot --pull=never)"
buildah build --isolation chroot --pull=never --layers --build-arg VERSION="$VERSION" -t "$IMAGE" . >"$work/build.log" 2>&1 || { tail -30 "$work/build.log"; fail "buildah build"; }
[ "$(buildah inspect --format '{{index .OCIv1.Config.Labels "org.opencontainers.image.version"}}' "$IMAGE")" = "$VERSION" ] || fail "OCI version label"
[ "$(buildah inspect --format '{{.OCIv1.Config.User}}' "$IMAGE")" = "node" ] || fail "the image does not run as node"

step "a PostgreSQL on 127.0.0.1 with a reaper role and an idle victim"
cat >"$work/server.mjs" <<'JS'
import pg from 'pg';
import { startEmbeddedPostgres } from './dist/src/embedded/embedded-postgres.js';
const s = await startEmbeddedPostgres({});
const admin = new pg.Client(s.url); await admin.connect();
await admin.query("CREATE ROLE reaper LOGIN PASSWORD 'reaper-pw'; GRANT pg_read_all_stats, pg_signal_backend TO reaper; CREATE ROLE app LOGIN PASSWORD 'app-pw'");
const victim = new pg.Client({ connectionString: `postgres://app:app-pw@127.0.0.1:${s.port}/postgres`, application_name: 'container-victim' });
victim.on('error', () => {}); await victim.connect(); await victim.query('SELECT 1');
console.log(JSON.stringify({ port: s.port, victim: victim.processID, url: s.url }));
process.on('SIGTERM', async () => { await s.stop(); process.exit(0); });
setInterval(() => {}, 1000);
JS
node --input-type=module -e "$(cat "$work/server.mjs")" >"$work/server.json" 2>"$work/server.log" &
server_pid=$!
for _ in $(seq 1 100); do [ -s "$work/server.json" ] && break; sleep 0.2; done
[ -s "$work/server.json" ] || { cat "$work/server.log"; fail "the test server did not start"; }
port=$(node -p "JSON.parse(require('fs').readFileSync('$work/server.json','utf8')).port")
victim=$(node -p "JSON.parse(require('fs').readFileSync('$work/server.json','utf8')).victim")
admin_url=$(node -p "JSON.parse(require('fs').readFileSync('$work/server.json','utf8')).url")
alive() { node -e "const pg=require('pg');const c=new pg.Client(process.argv[1]);c.connect().then(()=>c.query('SELECT 1 FROM pg_stat_activity WHERE pid=\$1',[Number(process.argv[2])])).then(r=>{console.log(r.rowCount);return c.end()})" "$admin_url" "$victim"; }

step "the image's entrypoint, with a read-only config mount"
mkdir -p "$work/etc"
cat >"$work/etc/config.yaml" <<YAML
schedule: "* * * * * *"
http: { host: 127.0.0.1, port: 19188 }
targets: [{ name: local, host: 127.0.0.1, port: $port, user: reaper, password: reaper-pw, database: postgres, ssl: { mode: disable } }]
policies: [{ name: idle, maxIdle: 1s, match: { applications: [container-victim] } }]
YAML
chmod -R a+rX "$work"
ctr=$(buildah from --pull=never "$IMAGE")
entrypoint=$(buildah inspect --format '{{range .OCIv1.Config.Entrypoint}}{{.}} {{end}}' "$IMAGE")
cmd=$(buildah inspect --format '{{range .OCIv1.Config.Cmd}}{{.}} {{end}}' "$IMAGE")
# shellcheck disable=SC2086 # the entrypoint and command as the image declares them
buildah run --isolation chroot --user node -v "$work/etc/config.yaml:/etc/pg-reaper/config.yaml:ro" "$ctr" -- $entrypoint $cmd >"$work/run.log" 2>&1 &
run_pid=$!
scrape() { node -e "fetch('http://127.0.0.1:19188/metrics').then((r) => (r.ok ? r.text() : Promise.reject(r.status))).then((t) => process.stdout.write(t), () => process.exit(1))"; }
for _ in $(seq 1 150); do scrape >"$work/metrics" 2>/dev/null && break; sleep 0.2; done
grep -q '^pg_reaper_build_info{version="'"$VERSION"'"} 1' "$work/metrics" || { cat "$work/run.log"; fail "/metrics does not answer with the image's version"; }
echo "ok: /metrics answers"
daemon_pid=$(pgrep -f -n "/app/dist/pg-reaper/cli.js run") || fail "the daemon process is not visible"
uid=$(awk '/^Uid:/ {print $2}' "/proc/$daemon_pid/status")
[ "$uid" = 1000 ] || fail "the daemon runs as uid $uid, not 1000"
echo "ok: the daemon runs as uid 1000"
for _ in $(seq 1 50); do [ "$(alive)" = 0 ] && break; sleep 0.2; done
[ "$(alive)" = 0 ] || { cat "$work/run.log"; fail "the victim was not reaped"; }
grep -q '"outcome":"terminated"' "$work/run.log" || fail "no terminated action in the log"
echo "ok: the victim was reaped"
kill -TERM "$daemon_pid"
set +e
wait "$run_pid"; code=$?
set -e
[ "$code" = 0 ] || { cat "$work/run.log"; fail "SIGTERM gave exit $code"; }
grep -q '"msg":"stopped"' "$work/run.log" || fail "no clean stop in the log"
echo "ok: SIGTERM gave exit 0"
echo "image $IMAGE: $(buildah images --format '{{.Size}}' "$IMAGE" | head -n 1)"
echo "container-test: passed"
