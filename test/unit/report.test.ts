import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/load.js';
import { plan } from '../../src/plan/planner.js';
import { compilePolicies } from '../../src/policy/compile.js';
import { actionFields } from '../../src/run/log-lines.js';
import { privilegeWarnings } from '../../src/run/privileges.js';
import { session, snapshot } from '../helpers/sessions.js';

// What a run's log lines say: the evidence of each decision named for what it is, and GRANTs an
// operator can paste.

describe('action log fields', () => {
  it('the evidence is `seconds` beside its reason: the transaction age for transaction_duration, the connection age for connection_age', () => {
    const busy = session({ activeFor: 2, xactFor: 3700 });
    const old = session({ idleFor: 5, connectedFor: 50_000 });
    const c = validateConfig({ targets: [{ name: 't', host: 'db' }], policies: [{ name: 'tx', maxTransactionDuration: '1h' }, { name: 'age', maxConnectionAge: '12h' }] });
    const ds = plan(snapshot([busy, old]), compilePolicies(c, 't'), { target: 't', applicationName: 'pg-reaper' });
    const fields = ds.map((d) => actionFields({ decision: d, outcome: 'terminated' }, false));
    expect(fields.map((f) => [f.pid, f.reason, f.state, f.seconds, f.thresholdSeconds])).toEqual([
      [old.pid, 'connection_age', 'idle', 50_000, 43_200],
      [busy.pid, 'transaction_duration', 'active', 3700, 3600],
    ]);
    for (const f of fields) expect(f).not.toHaveProperty('stateSeconds');
  });
});

describe('privilege warnings', () => {
  it('end with one GRANT statement each, the role always a quoted identifier (a keyword, capitals, a quote)', () => {
    const none = { superuser: false, readAllStats: false, signalBackend: false };
    expect(privilegeWarnings(none, 'reaper_np')).toEqual([
      "cannot see other roles' sessions in pg_stat_activity (state and times are hidden, so they are never judged): run GRANT pg_read_all_stats TO \"reaper_np\";",
      'can only signal sessions of roles it has the privileges of: run GRANT pg_signal_backend TO "reaper_np";',
    ]);
    expect(privilegeWarnings({ ...none, signalBackend: true }, 'user')).toEqual([expect.stringMatching(/ TO "user";$/)]);
    expect(privilegeWarnings({ ...none, signalBackend: true }, 'Ops "Reaper"')).toEqual([expect.stringMatching(/ TO "Ops ""Reaper""";$/)]);
    expect(privilegeWarnings({ superuser: true, readAllStats: false, signalBackend: false }, 'postgres')).toEqual([]);
  });
});
