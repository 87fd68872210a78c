#!/usr/bin/env bash
# scripts/container-test.sh: builds the image from the Dockerfile with buildah and runs the
# image's own entrypoint against a PostgreSQL on this machine's loopback. Rerunnable, and safe
# beside other work on the machine: a free port (the daemon picks one), its own processes only.
#   - the stand-in base image (no image registry here) is built by ../shared/tools/node-base-image.sh when missing
#   - the image holds the product only: no dev tooling (embedded server, demo), sources or tests
#   - a victim session is reaped, /metrics answers, the process runs as uid 1000, the config is
#     mounted read-only, SIGTERM gives exit 0
#   - Node's compile cache filled at build time is used by the node user: no "Cannot create cache
#     directory", and the start-up time with it is printed beside the time without it
#   - the image size is printed
# Needs root, buildah and podman; run `npm run build` first (the test server comes from dist/dev).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
IMAGE=localhost/pg-reaper:test
BASE=docker.io/library/node:24-bookworm-slim
VERSION=$(node -p 'require("./package.json").version')
work=$(mktemp -d)
ctr=""
server_pid=""
run_pid=""
cleanup() {
  [ -n "$run_pid" ] && kill "$run_pid" 2>/dev/null && wait "$run_pid" 2>/dev/null || true
  [ -n "$ctr" ] && buildah rm "$ctr" >/dev/null 2>&1 || true
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "container-test: FAIL: $*" >&2; exit 1; }
step() { echo "--- $*"; }
[ -f dist/dev/embedded/embedded-postgres.js ] || fail "dist/dev is missing: run npm run build first"

if ! buildah images --format '{{.Name}}:{{.Tag}}' | grep -qx "$BASE"; then
  step "building the stand-in base image $BASE"
  bash "$REPO/../shared/tools/node-base-image.sh"
fi

step "buildah build (--isolation chroot --pull=never)"
buildah build --isolation chroot --pull=never --layers --build-arg VERSION="$VERSION" -t "$IMAGE" . >"$work/build.log" 2>&1 || { tail -30 "$work/build.log"; fail "buildah build"; }
[ "$(buildah inspect --format '{{index .OCIv1.Config.Labels "org.opencontainers.image.version"}}' "$IMAGE")" = "$VERSION" ] || fail "OCI version label"
[ "$(buildah inspect --format '{{.OCIv1.Config.User}}' "$IMAGE")" = "node" ] || fail "the image does not run as node"
ctr=$(buildah from --pull=never "$IMAGE")
in_image() { buildah run --isolation chroot --user node "$ctr" -- "$@"; }

step "the image's files: the product only"
in_image find /app /etc/pg-reaper -path /app/node_modules -prune -o -type f -print | sort >"$work/files"
in_image ls /app/node_modules >"$work/modules"
echo "files outside node_modules: $(wc -l <"$work/files"); $(grep -c . "$work/modules") entries in node_modules"
bad=$(grep -E '/(src|dev|test|bench|scripts|docs|deploy)/|keeper|demo|embedded|\.ts$|\.map$' "$work/files" | grep -v '^/app/compile-cache/' || true)
[ -z "$bad" ] || fail "dev tooling, sources or tests in the image: $bad"
bad=$(grep -E '^(@embedded-postgres|vitest|typescript|esbuild|@types|@vitest)$' "$work/modules" || true)
[ -z "$bad" ] || fail "dev dependencies in the image's node_modules: $bad"
bad=$(in_image sh -c "grep -lrE 'useradd|@embedded-postgres|startEmbeddedPostgres|runDemo' /app/dist || true")
[ -z "$bad" ] || fail "the bundle in the image holds dev tooling: $bad"
echo "ok: /app/dist holds the bundle only ($(grep -c '^/app/dist/' "$work/files") files), no dev dependencies"

step "a PostgreSQL on 127.0.0.1 with a reaper role and an idle victim"
cat >"$work/server.mjs" <<'JS'
import pg from 'pg';
import { startEmbeddedPostgres } from './dist/dev/embedded/embedded-postgres.js';
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
json() { node -p "JSON.parse(require('fs').readFileSync(process.argv[1],'utf8')).$2" "$1"; }
port=$(json "$work/server.json" port)
victim=$(json "$work/server.json" victim)
admin_url=$(json "$work/server.json" url)
alive() { node -e "const pg=require('pg');const c=new pg.Client(process.argv[1]);c.connect().then(()=>c.query('SELECT 1 FROM pg_stat_activity WHERE pid=\$1',[Number(process.argv[2])])).then(r=>{console.log(r.rowCount);return c.end()})" "$admin_url" "$victim"; }

step "the image's entrypoint, with a read-only config mount and a port of its own choosing"
mkdir -p "$work/etc"
cat >"$work/etc/config.yaml" <<YAML
schedule: "* * * * * *"
http: { host: 127.0.0.1, port: 0 }
targets: [{ name: local, host: 127.0.0.1, port: $port, user: reaper, password: reaper-pw, database: postgres, ssl: { mode: disable } }]
policies: [{ name: idle, maxIdle: 1s, match: { applications: [container-victim] } }]
YAML
chmod -R a+rX "$work"
entrypoint=$(buildah inspect --format '{{range .OCIv1.Config.Entrypoint}}{{.}} {{end}}' "$IMAGE")
cmd=$(buildah inspect --format '{{range .OCIv1.Config.Cmd}}{{.}} {{end}}' "$IMAGE")
# NODE_DEBUG_NATIVE=COMPILE_CACHE: Node says on stderr whether it could use the compile cache
# shellcheck disable=SC2086 # the entrypoint and command as the image declares them
buildah run --isolation chroot --user node --env NODE_DEBUG_NATIVE=COMPILE_CACHE -v "$work/etc/config.yaml:/etc/pg-reaper/config.yaml:ro" "$ctr" -- $entrypoint $cmd >"$work/run.log" 2>"$work/run.err" &
run_pid=$!
for _ in $(seq 1 150); do grep -q '"msg":"pg-reaper started' "$work/run.log" 2>/dev/null && break; sleep 0.2; done
start_line=$(grep -m1 '"msg":"pg-reaper started' "$work/run.log") || { cat "$work/run.log" "$work/run.err"; fail "the daemon did not start"; }
http_port=$(node -p 'JSON.parse(process.argv[1]).port' "$start_line")
scrape() { node -e "fetch('http://127.0.0.1:$http_port/metrics').then((r) => (r.ok ? r.text() : Promise.reject(r.status))).then((t) => process.stdout.write(t), () => process.exit(1))"; }
scrape >"$work/metrics" || fail "/metrics on port $http_port does not answer"
grep -q '^pg_reaper_build_info{version="'"$VERSION"'"} 1' "$work/metrics" || { cat "$work/run.log"; fail "/metrics does not answer with the image's version"; }
echo "ok: /metrics answers on port $http_port, which the daemon picked"

# the daemon is the container's own process: the node process among the descendants of our
# buildah run (buildah's own helpers carry the command line too), and the pid it logs itself
descendants() {
  local parent=$1 pid
  for pid in $(cat /proc/"$parent"/task/*/children 2>/dev/null); do echo "$pid"; descendants "$pid"; done
}
daemon_pid=""
for pid in $(descendants "$run_pid"); do
  [[ "$(readlink "/proc/$pid/exe" 2>/dev/null)" == */node ]] || continue
  if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q '/app/dist/pg-reaper/cli.js run'; then daemon_pid=$pid; break; fi
done
[ -n "$daemon_pid" ] || fail "no node process under our buildah run ($run_pid) runs /app/dist/pg-reaper/cli.js"
logged_pid=$(node -p 'JSON.parse(process.argv[1]).pid' "$start_line")
[ "$daemon_pid" = "$logged_pid" ] || fail "the node process under our buildah run is $daemon_pid, the daemon says it is $logged_pid"
uid=$(awk '/^Uid:/ {print $2}' "/proc/$daemon_pid/status")
[ "$uid" = 1000 ] || fail "the daemon runs as uid $uid, not 1000"
echo "ok: the daemon (pid $daemon_pid, under our buildah run $run_pid, the pid it logs) runs as uid 1000"
for _ in $(seq 1 50); do [ "$(alive)" = 0 ] && break; sleep 0.2; done
[ "$(alive)" = 0 ] || { cat "$work/run.log"; fail "the victim was not reaped"; }
grep -q '"outcome":"terminated"' "$work/run.log" || fail "no terminated action in the log"
echo "ok: the victim was reaped"
kill -TERM "$daemon_pid"
set +e
wait "$run_pid"; code=$?
set -e
run_pid=""
[ "$code" = 0 ] || { cat "$work/run.log"; fail "SIGTERM gave exit $code"; }
grep -q '"msg":"stopped"' "$work/run.log" || fail "no clean stop in the log"
echo "ok: SIGTERM gave exit 0"

step "Node's compile cache, filled at build time, used at run time"
! grep -q 'Cannot create cache directory' "$work/run.err" || { grep 'compile cache' "$work/run.err" | head -5; fail "the node user cannot use the compile cache"; }
# "was accepted": loaded from the cache; "was not initialized" / "was rejected": compiled anew
hits=$(grep -c 'compile cache\] V8 code cache for .* was accepted' "$work/run.err" || true)
misses=$(grep -cE 'compile cache\] V8 code cache for .* was (not initialized|rejected)' "$work/run.err" || true)
[ "$hits" -gt 0 ] || { grep 'compile cache' "$work/run.err" | head -20; fail "no module was loaded from the compile cache"; }
echo "ok: the daemon loaded $hits modules from the compile cache and compiled $misses anew; no 'Cannot create cache directory'"
# start-up: from exec to the daemon's start line, median of 7, with the cache and without it
cat >"$work/startup.cjs" <<'JS'
const { spawn } = require('node:child_process');
const once = (env) => new Promise((resolve, reject) => {
  const t0 = process.hrtime.bigint();
  const child = spawn(process.execPath, ['--max-semi-space-size=1', '/app/dist/pg-reaper/cli.js', 'run', '-c', '/etc/pg-reaper/config.yaml'], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'ignore'] });
  let out = '';
  child.stdout.on('data', (d) => {
    out += d;
    if (!out.includes('pg-reaper started')) return;
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    child.kill('SIGTERM');
    child.on('exit', () => resolve(ms));
  });
  child.on('error', reject);
});
const median = (xs) => xs.sort((a, b) => a - b)[xs.length >> 1];
(async () => {
  const warm = [], cold = [];
  for (let i = 0; i < 7; i++) {
    warm.push(await once({}));
    cold.push(await once({ NODE_DISABLE_COMPILE_CACHE: '1' }));
  }
  console.log(`start-up to the daemon's start line (median of 7): ${median(warm).toFixed(0)} ms with the compile cache, ${median(cold).toFixed(0)} ms without`);
})();
JS
buildah run --isolation chroot --user node -v "$work/etc/config.yaml:/etc/pg-reaper/config.yaml:ro" -v "$work/startup.cjs:/tmp/startup.cjs:ro" "$ctr" -- node /tmp/startup.cjs

echo "image $IMAGE: $(buildah images --format '{{.Size}}' "$IMAGE" | head -n 1)"
echo "container-test: passed"
