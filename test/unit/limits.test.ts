/**
 * Limits (issue 20), the pure parts: which limits a decision names (the rules' match language,
 * fail closed on "maybe"), and the limit service's arithmetic over clock windows with a fake
 * clock — the rate refusal and its reset, the hourly row budget, the smallest bound naming its
 * limit, suspension, and what a `limit.exceeded` record carries.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { IdentityConfig, LimitConfig } from '../../src/config/types.js';
import { compilePolicy, decide, formatExplain, type DecisionInput, type PolicyIdentity } from '../../src/policy/index.js';
import { analyzeSql, initSqlParser } from '../../src/sql/index.js';
import { createLimitService, localCounters } from '../../src/governance/limits.js';
import type { SessionInfo, StatementSource } from '../../src/contract/statement-hooks.js';
import { silentLogger } from '../../src/log/logger.js';

const agent: PolicyIdentity = { name: 'trainer', kind: 'agent', groups: ['ml'] };
const human: PolicyIdentity = { name: 'alice', kind: 'human', groups: ['analysts'] };
const NOW = new Date('2026-01-05T10:00:00Z');

const limits: LimitConfig[] = [
  { name: 'agent-volume', match: { kind: ['agent'] }, maxRows: 1000, maxBytes: 1 << 20, onExceed: 'halt' },
  { name: 'customers-hourly', match: { tables: ['public.customers'] }, rowsPerHour: 150, statementsPerMinute: 3, onExceed: 'halt' },
];

function input(identity: PolicyIdentity, sql: string): DecisionInput {
  return { identity, session: { database: 'app', environment: 'test', intent: {}, now: NOW }, analysis: analyzeSql(sql, { searchPath: ['public'] }) };
}

beforeAll(async () => {
  await initSqlParser();
});

describe('the limits a decision names', () => {
  const policy = compilePolicy([], 'allow', { limits });

  it('names each limit whose match holds for some statement, in config order', () => {
    expect(decide(input(agent, 'SELECT * FROM public.customers'), policy).limits).toEqual(['agent-volume', 'customers-hourly']);
    expect(decide(input(human, 'SELECT * FROM public.customers'), policy).limits).toEqual(['customers-hourly']);
    expect(decide(input(human, 'SELECT 1; SELECT * FROM customers'), policy).limits).toEqual(['customers-hourly']);
  });

  it('names none (no key at all) when none applies, and costs nothing without limits', () => {
    expect(decide(input(human, 'SELECT * FROM orders'), policy).limits).toBeUndefined();
    expect(decide(input(agent, 'SELECT 1'), compilePolicy([], 'allow')).limits).toBeUndefined();
  });

  it('binds what it cannot see: an unparsable string, or a table behind a function, may touch the table', () => {
    expect(decide(input(human, 'SELEC * FROM customers'), policy).limits).toEqual(['customers-hourly']);
  });

  it('refuses two limits of one name', () => {
    expect(() => compilePolicy([], 'allow', { limits: [limits[0]!, limits[0]!] })).toThrow(/duplicate limit name/);
  });

  it('policy explain lists the applying limits with their figures', () => {
    const a = analyzeSql('SELECT * FROM public.customers', { searchPath: ['public'] });
    const text = formatExplain(a, decide(input(agent, 'SELECT * FROM public.customers'), policy), limits);
    expect(text).toContain('Limit: agent-volume — max_rows 1000, max_bytes 1048576, on_exceed halt');
    expect(text).toContain('Limit: customers-hourly — rows_per_hour 150, statements_per_minute 3, on_exceed halt');
  });
});

function session(name: string, kind: IdentityConfig['kind'] = 'agent'): SessionInfo {
  return {
    id: `s-${name}`,
    identity: { name, kind, groups: [] },
    auth: { method: 'password' },
    database: { name: 'app' },
    clientAddress: '127.0.0.1',
    clientPort: 5000,
    tls: false,
    startupParams: new Map(),
    wardenSettings: new Map(),
    parameters: new Map(),
    txStatus: 'I',
    onInterrupt: () => () => undefined,
  } as unknown as SessionInfo;
}

describe('the limit service', () => {
  const policy = compilePolicy([], 'allow', { limits });
  const stmt = (sql: string): StatementSource => ({ protocol: 'simple', sql });
  const setup = (extra: LimitConfig[] = []) => {
    let t = Date.parse('2026-01-05T10:00:10Z');
    const recorded: { type: string; data: Record<string, unknown> }[] = [];
    const suspended: string[] = [];
    const svc = createLimitService({
      limits: [...limits, ...extra],
      log: silentLogger(),
      record: (type, data) => recorded.push({ type, data }),
      suspend: () => async (identity, reason) => suspended.push(`${identity}: ${reason}`),
      counters: localCounters(),
      now: () => t,
    });
    return { svc, recorded, suspended, advance: (ms: number) => (t += ms) };
  };

  it('refuses the statement past statements_per_minute with 53400 and the minute it resets, then lets it run in the next minute', () => {
    const { svc, recorded, advance } = setup();
    const s = session('alice', 'human');
    const d = decide(input(human, 'SELECT * FROM customers'), policy);
    for (let i = 0; i < 3; i++) expect(svc.check(s, stmt('SELECT * FROM customers'), d).refusal).toBeUndefined();
    const r = svc.check(s, stmt('SELECT * FROM customers'), d);
    expect(r.refusal?.code).toBe('53400');
    expect(r.refusal?.message).toBe('limit "customers-hourly": alice may start 3 statements per minute (statements_per_minute) and reached it; it resets at 2026-01-05T10:01:00.000Z');
    expect(recorded[0]).toMatchObject({ type: 'limit.exceeded', data: { identity: 'alice', limit: 'customers-hourly', measure: 'statements_per_minute', figure: 4, max: 3 } });
    // A refused statement is not counted; the next minute starts afresh.
    advance(50_000);
    expect(svc.check(s, stmt('SELECT * FROM customers'), d).refusal).toBeUndefined();
    // Another identity has its own count.
    expect(svc.check(session('bob', 'human'), stmt('SELECT * FROM customers'), d).refusal).toBeUndefined();
  });

  it('bounds each statement by what is left of the hour, counting rows as statements complete', () => {
    const { svc, advance } = setup();
    const s = session('alice', 'human');
    const d = decide(input(human, 'SELECT * FROM customers'), policy);
    const r1 = svc.check(s, stmt('SELECT * FROM customers'), d);
    expect(r1.limit?.maxRows).toBe(150);
    r1.onDone!({ tags: ['SELECT 100'], rows: 100 });
    advance(61_000);
    const r2 = svc.check(s, stmt('SELECT * FROM customers'), d);
    expect(r2.limit?.maxRows).toBe(50);
    const e = r2.limit!.exceeded(51, 400);
    expect(e.code).toBe('54000');
    expect(e.message).toMatch(/rows_per_hour.*halted at row 51 with 150 rows received this hour/);
    r2.onDone!({ tags: [], rows: 50 });
    // The next hour starts afresh.
    advance(3_600_000);
    expect(svc.check(s, stmt('SELECT * FROM customers'), d).limit?.maxRows).toBe(150);
  });

  it('takes the smallest bound and names the limit it comes from', () => {
    const { svc, recorded } = setup();
    const d = decide(input(agent, 'SELECT * FROM customers'), policy);
    const r = svc.check(session('trainer'), stmt('SELECT * FROM customers'), d);
    expect(r.limit).toMatchObject({ maxRows: 150, maxBytes: 1 << 20 });
    expect(r.limit!.exceeded(151, 10).message).toMatch(/^limit "customers-hourly"/);
    const r2 = svc.check(session('trainer'), stmt('SELECT * FROM orders'), decide(input(agent, 'SELECT * FROM orders'), policy));
    expect(r2.limit!.exceeded(1001, 10).message).toBe('limit "agent-volume": a statement may return 1000 rows (max_rows); this one was halted at row 1001');
    expect(r2.limit!.exceeded(10, (1 << 20) + 5).message).toMatch(/^limit "agent-volume": a statement may return 1048576 bytes of results \(max_bytes\); this one was halted at 1048581 bytes/);
    expect(recorded.map((x) => x.data.measure)).toEqual(['rows_per_hour', 'max_rows', 'max_bytes']);
  });

  it('suspends the identity when the limit says so, and records the statement with its secrets redacted', () => {
    const { svc, recorded, suspended } = setup([{ name: 'strict', match: { identity: ['trainer'] }, maxRows: 5, onExceed: 'suspend' }]);
    const p = compilePolicy([], 'allow', { limits: [...limits, { name: 'strict', match: { identity: ['trainer'] }, maxRows: 5, onExceed: 'suspend' }] });
    const sql = "SELECT * FROM dblink('host=x password=hunter2-secret', 'select 1') AS t(a int)";
    const r = svc.check(session('trainer'), stmt(sql), decide(input(agent, sql), p));
    r.limit!.exceeded(6, 10);
    expect(suspended).toEqual(['trainer: limit "strict" exceeded: max_rows 6 > 5']);
    expect(recorded[0]!.data).toMatchObject({ limit: 'strict', on_exceed: 'suspend' });
    expect(String(recorded[0]!.data.sql)).not.toContain('hunter2-secret');
  });
});
