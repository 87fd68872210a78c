export const USAGE = `pg-reaper: terminates PostgreSQL sessions that break YAML policies

Usage:
  pg-reaper [run]                 run the daemon: scheduled runs, /metrics, /livez, /readyz
  pg-reaper check                 validate the config and print a summary
  pg-reaper once [--dry-run] [--json]
                                  run every target once and print the decisions
                                  (--json: one JSON object per decision per line)
  pg-reaper demo                  start a throwaway PostgreSQL and watch the reaper work

Options:
  -c, --config PATH   config file (default: $PG_REAPER_CONFIG, else ./config.yaml)
  -h, --help          show this help
  -V, --version       print the version

Exit codes: 0 done, 1 a target failed, 2 usage or config error.
`;
