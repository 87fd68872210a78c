const EXIT_CODES = 'Exit codes: 0 done, 1 a target failed, 2 usage or config error, 3 cannot listen on the HTTP port (run).';

export const USAGE = `pg-reaper: terminates PostgreSQL sessions that break YAML policies

Usage:
  pg-reaper [run]                 run the daemon: scheduled runs, /metrics, /livez, /readyz
  pg-reaper check [--connect]     validate the config (--connect: and what it can do on each server)
  pg-reaper once [--dry-run] [--json]
                                  run every target once and print the decisions
  pg-reaper audit-init [--print]  create the audit table if missing (--print: its DDL)
  pg-reaper once --dry-run --from SNAPSHOT [--target NAME] [--json]
                                  judge a saved snapshot offline, as once --dry-run would
  pg-reaper snapshot [--target NAME] [-o FILE] [--with-query]
                                  save every client session of a target as a snapshot file
  pg-reaper test FILE...          run policy tests (exit 0 all pass, 1 one failed, 2 malformed)

Options:
  -c, --config PATH       config file (default: $PG_REAPER_CONFIG, else ./config.yaml)
      --log-format FMT    json or pretty (default: pretty on a terminal, else json)
  -h, --help              show this help; "pg-reaper VERB --help" for one verb
  -V, --version           print the version

${EXIT_CODES}
`;

export const VERB_HELP: Record<string, string> = {
  run: `pg-reaper run [-c PATH] [--log-format json|pretty]

Runs the daemon: every target once at start, then on the schedule; serves /metrics, /livez,
/readyz on http.host:http.port. SIGTERM or SIGINT stop it (waiting for runs in flight);
SIGHUP reloads the config, and so does a change of the file (watchConfig, on by default); a config
with any problem is rejected and the old one keeps running.
Under "npm start" send SIGHUP to the daemon's own pid, which the start line logs.

Example:
  pg-reaper run -c /etc/pg-reaper/config.yaml

${EXIT_CODES}
`,
  check: `pg-reaper check [-c PATH] [--connect]

Validates the config and prints a summary (targets, policies, schedule, what is protected and
the budgets); every problem is reported as FILE:LINE:COL PATH: message. With --connect it also
connects to every target and prints, per target, the server version, the reaper's privileges
and how many client sessions it can see, judge and signal, and how many are protected, then a
line with the GRANT for each privilege missing; it exits 1 when a target is unreachable or its
sessions cannot be read.

Example:
  pg-reaper check -c config.yaml --connect

${EXIT_CODES}
`,
  once: `pg-reaper once [-c PATH] [--dry-run] [--json]
pg-reaper once [-c PATH] --dry-run --from SNAPSHOT [--target NAME] [--json]

Runs every target once and prints the decisions: a table, or with --json one JSON object per
decision per line. --dry-run signals nothing (decisions are reported as would_terminate /
would_cancel). Log lines go to stderr. With audit configured, every decision is also written
to the audit table before it exits (within shutdownTimeout; rows it could not write make it
exit 1).

With --from, nothing connects: a snapshot file (pg-reaper snapshot) is judged with the policies
of --target, else of the target it was taken of, else of the config's only target, and printed
as a live "once --dry-run" would print it. The targets' connection settings are not read.

Examples:
  pg-reaper once -c config.yaml --dry-run
  pg-reaper once -c config.yaml --dry-run --from primary.snapshot.json --json

${EXIT_CODES}
`,
  'audit-init': `pg-reaper audit-init [-c PATH] [--print]

Creates the audit table of the config (audit.table, default reaper_audit.actions) and its
schema if they are missing, on the audit server (audit.connectionString or audit.target), so
that the reaper's own role needs only INSERT on it. What exists is left alone and checked:
it says whether pg-reaper can insert into it. Run it as often as you like.
With --print it connects to nothing and prints the DDL (with the GRANT for the role of the
audit connection), for a role that may create it: pipe it to psql.

Example:
  pg-reaper audit-init -c config.yaml
  pg-reaper audit-init -c config.yaml --print | psql "postgres://admin@audit.db.internal/ops"

Exit codes: 0 done, 1 it could not be created or written, 2 usage or config error (or no audit).
`,
  snapshot: `pg-reaper snapshot [-c PATH] [--target NAME] [-o FILE] [--with-query]

Connects to one target (--target, or the config's only one) and writes every client session
but its own, as the planner sees it, as one JSON document: the server's clock (takenAt), the
target, server facts (clientSlots, version, reaperSuperuser) and the sessions, their ages before
takenAt. The file is what "once --dry-run --from" replays and a policy test's sessionsFrom reads.
User and application names and client addresses are kept (edit the file before sharing it);
query text only with --with-query. Written to FILE (readable by its owner only) or stdout.

Example:
  pg-reaper snapshot -c config.yaml --target primary -o primary.snapshot.json

${EXIT_CODES}
`,
  test: `pg-reaper test FILE...

Runs policy tests: each YAML file names a config and lists tests, each with sessions (or a
snapshot file), optional server facts and the outcome expected per pid. The sessions are judged
by the daemon's own planner, as a dry run: nothing connects. Prints one line per test, ok or
FAIL with what differs pid by pid, and a summary. See the README, "Test a config before it runs".

Example:
  pg-reaper test deploy/examples/policies.test.yaml

Exit codes: 0 every test passed, 1 a test failed, 2 a malformed test file, config or snapshot
(reported as FILE:LINE:COL on stderr) or a usage error.
`,
};
