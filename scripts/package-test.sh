#!/usr/bin/env bash
# npm run test:package: what `npm install -g pg-reaper` gives an operator. Packs a fresh clone of
# the committed tree (prepack builds it), checks the tarball's contents, installs it into a
# temporary prefix, and runs the installed pg-reaper: --version, check, demo's message, policy
# tests, and snapshot and replay against a throwaway PostgreSQL (started from the clone's build
# with the dev dependencies). Leaves nothing behind.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "test:package: FAIL: $*" >&2; exit 1; }

git clone --quiet . "$work/clone"
ln -s "$PWD/node_modules" "$work/clone/node_modules"   # dev dependencies for prepack's build
[ ! -e "$work/clone/dist" ] || fail "a fresh clone already has dist/"
tarball=$(cd "$work/clone" && npm pack --silent --pack-destination "$work" | tail -n 1)
contents=$(tar -tzf "$work/$tarball")
for f in package/dist/pg-reaper/cli.js package/deploy/systemd/pg-reaper.service package/LICENSE package/README.md package/config.example.yaml package/config.schema.json package/policy-test.schema.json package/deploy/examples/policies.test.yaml package/package.json; do
  grep -qx "$f" <<<"$contents" || fail "$f is not in $tarball"
done
! grep -q '\.map$' <<<"$contents" || fail "source maps in the package point at sources it does not ship"
! grep -qE '^package/(src|dev|test|bench|dist/src|dist/dev|dist/bench)/' <<<"$contents" || fail "sources, dev tooling, tests, benchmarks or unbundled output in the package"
! tar -xzOf "$work/$tarball" package/dist/pg-reaper | grep -qE 'useradd|embedded-postgres|runDemo' || fail "the bundle holds development tooling (embedded server or demo)"
echo "ok: $tarball holds the built program ($(wc -l <<<"$contents") files)"

npm install --global --prefix "$work/prefix" --no-audit --no-fund --loglevel=error "$work/$tarball"
bin="$work/prefix/bin/pg-reaper"
# the systemd unit runs node on the bundle where `npm install --global --prefix /opt/pg-reaper` puts it
unit_cli=$(sed -n 's#^ExecStart=[^ ]* [^ ]* /opt/pg-reaper/\([^ ]*\) run$#\1#p' deploy/systemd/pg-reaper.service)
[ -n "$unit_cli" ] && [ -f "$work/prefix/$unit_cli" ] || fail "the unit's ExecStart (/opt/pg-reaper/$unit_cli) is not where the package installs its bundle"
echo "ok: the unit's ExecStart names the installed bundle (/opt/pg-reaper/$unit_cli)"
version=$(node -p 'require("./package.json").version')
[ "$("$bin" --version)" = "pg-reaper $version" ] || fail "--version: $("$bin" --version)"
DATABASE_URL='postgres://reaper@127.0.0.1:5432/postgres' "$bin" check -c config.example.yaml | grep -q ': ok: ' || fail "check on config.example.yaml"
set +e
demo=$("$bin" demo 2>&1); code=$?
set -e
[ "$code" = 2 ] && grep -q 'npm run demo' <<<"$demo" || fail "demo from the installed package: exit $code: $demo"
echo "ok: the installed pg-reaper $version runs --version, check and says what to do for demo"

# policy tests, offline: the example the package ships passes (no checkout, no DATABASE_URL),
# a failing one exits 1
example="$work/prefix/lib/node_modules/pg-reaper/deploy/examples/policies.test.yaml"
[ -f "$example" ] || fail "the package does not ship deploy/examples/policies.test.yaml"
set +e
tested=$(cd "$work" && env -u DATABASE_URL "$bin" test "$example" 2>&1); code=$?
set -e
[ "$code" = 0 ] && grep -qE '^[0-9]+ tests in 1 file: [0-9]+ passed, 0 failed$' <<<"$tested" || fail "test $example: exit $code: $tested"
cat >"$work/failing.test.yaml" <<YAML
config: $PWD/config.example.yaml
tests:
  - name: an idle session of 5m is left alone
    sessions: [{ pid: 1, user: app_web, state: idle in transaction, stateAge: 5m }]
    expect: [{ pid: 1, action: none }]
YAML
set +e
failed=$("$bin" test "$work/failing.test.yaml" 2>&1); code=$?
set -e
[ "$code" = 1 ] && grep -q 'FAIL  an idle session of 5m is left alone' <<<"$failed" || fail "a failing policy test: exit $code: $failed"
echo "ok: the installed pg-reaper runs policy tests (the example passes, a failing test exits 1)"

# snapshot and replay against a real server
cat >"$work/server.mjs" <<'JS'
import pg from 'pg';
import { startEmbeddedPostgres } from './dist/dev/embedded/embedded-postgres.js';
const s = await startEmbeddedPostgres({});
const admin = new pg.Client(s.url);
await admin.connect();
await admin.query("CREATE ROLE reaper LOGIN PASSWORD 'reaper-pw'; GRANT pg_read_all_stats, pg_signal_backend TO reaper; CREATE ROLE app LOGIN PASSWORD 'app-pw'");
await admin.end();
const victim = new pg.Client({ connectionString: `postgres://app:app-pw@127.0.0.1:${s.port}/postgres`, application_name: 'package-victim' });
victim.on('error', () => {});
await victim.connect();
await victim.query('SELECT 1');
console.log(JSON.stringify({ port: s.port, victim: victim.processID }));
process.on('SIGTERM', async () => { await victim.end().catch(() => {}); await s.stop(); process.exit(0); });
setInterval(() => {}, 1000);
JS
cp "$work/server.mjs" "$work/clone/server.mjs"
(cd "$work/clone" && exec node server.mjs) >"$work/server.json" 2>"$work/server.log" &
server_pid=$!
for _ in $(seq 1 150); do [ -s "$work/server.json" ] && break; sleep 0.2; done
[ -s "$work/server.json" ] || { cat "$work/server.log"; fail "the test server did not start"; }
port=$(node -p "JSON.parse(require('fs').readFileSync('$work/server.json','utf8')).port")
victim=$(node -p "JSON.parse(require('fs').readFileSync('$work/server.json','utf8')).victim")
cat >"$work/replay.yaml" <<YAML
targets: [{ name: local, host: 127.0.0.1, port: $port, user: reaper, password: reaper-pw, database: postgres, ssl: { mode: disable } }]
policies: [{ name: idle, maxIdle: 1s, match: { applications: [package-victim] } }]
YAML
# wait (polling the live dry run) until the victim is over maxIdle, then snapshot it
for _ in $(seq 1 50); do "$bin" once --dry-run --json -c "$work/replay.yaml" 2>/dev/null | grep -q "\"pid\":$victim," && break; sleep 0.2; done
"$bin" snapshot -c "$work/replay.yaml" -o "$work/local.snapshot.json" 2>/dev/null || fail "snapshot"
grep -q "\"pid\":$victim," "$work/local.snapshot.json" || fail "the snapshot does not list the victim: $(cat "$work/local.snapshot.json")"
replayed=$("$bin" once --dry-run --json --from "$work/local.snapshot.json" -c "$work/replay.yaml" 2>/dev/null) || fail "once --dry-run --from"
grep -q "\"outcome\":\"would_terminate\",\"dryRun\":true,\"pid\":$victim," <<<"$replayed" || fail "the replay does not judge the victim: $replayed"
cat >"$work/replay.test.yaml" <<YAML
config: replay.yaml
tests:
  - name: the saved victim is over maxIdle
    sessionsFrom: local.snapshot.json
    others: any
    expect: [{ pid: $victim, action: terminate, policy: idle, reason: idle }]
YAML
"$bin" test "$work/replay.test.yaml" >/dev/null || fail "a policy test on the snapshot: $("$bin" test "$work/replay.test.yaml" 2>&1)"
echo "ok: the installed pg-reaper takes a snapshot, replays it offline and tests policies on it"
