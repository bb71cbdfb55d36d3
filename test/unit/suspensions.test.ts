/**
 * The identity kill switch's service (governance/suspensions.ts) on real sqlite stores shared
 * by two "instances", and how a listing shows a statement (admin/session-routes.ts).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { openSqliteState } from '../../src/store/sqlite.js';
import type { StateStore, SuspensionRecord } from '../../src/store/types.js';
import { createSuspensionService, cleanReason, suspensionTermination, SuspensionError, type SuspensionService } from '../../src/governance/suspensions.js';
import { listedSql } from '../../src/admin/session-routes.js';
import { formatSessions, humanDuration, type ListedSession } from '../../src/cli/session-commands.js';
import { silentLogger } from '../../src/log/logger.js';
import type { AuditData } from '../../src/audit/log.js';
import { initSqlParser } from '../../src/sql/index.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('suspension service', () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function twoInstances(): Promise<{ a: SuspensionService; b: SuspensionService; storeB: StateStore; ended: { a: string[]; b: string[] }; audit: [string, AuditData][] }> {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'warden-susp-'));
    const file = path.join(dir, 'state.db');
    const storeA = await openSqliteState(file);
    const storeB = await openSqliteState(file);
    const audit: [string, AuditData][] = [];
    const a = createSuspensionService({ store: storeA, log: silentLogger(), audit: (t, d) => audit.push([t, d]), pollMs: 50 });
    const b = createSuspensionService({ store: storeB, log: silentLogger(), pollMs: 50 });
    const ended = { a: [] as string[], b: [] as string[] };
    // Each "instance" has one session of mallory until it is ended.
    const live = { a: true, b: true };
    for (const [svc, k] of [[a, 'a'], [b, 'b']] as const) {
      svc.setSessionEnder((identity, t) => {
        if (identity !== 'mallory' || !live[k]) return [];
        live[k] = false;
        ended[k].push(t.message);
        return [`s-${k}`];
      });
    }
    cleanups.push(async () => {
      a.close();
      b.close();
      await storeA.close();
      await storeB.close();
      rmSync(dir, { recursive: true, force: true });
    });
    return { a, b, storeB, ended, audit };
  }

  it('suspend: sessions a refresh ended while the suspension was being stored still count as ended by it', async () => {
    // The PostgreSQL state store announces its own write: this instance's refresh can read the new
    // suspension and end the sessions before suspend() itself gets to them.
    const dir = mkdtempSync(path.join(os.tmpdir(), 'warden-susp-'));
    const store = await openSqliteState(path.join(dir, 'state.db'));
    let svc: SuspensionService | undefined;
    const putSuspension = async (r: SuspensionRecord): Promise<void> => {
      await store.putSuspension(r);
      await svc!.refresh(); // the change notice, handled before putSuspension's caller goes on
    };
    const racing = new Proxy(store, {
      get(target, key) {
        if (key === 'putSuspension') return putSuspension;
        const v: unknown = Reflect.get(target, key, target);
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    }) as StateStore;
    svc = createSuspensionService({ store: racing, log: silentLogger(), pollMs: 60_000 });
    let live = true;
    svc.setSessionEnder((identity) => {
      if (identity !== 'mallory' || !live) return [];
      live = false;
      return ['s-1'];
    });
    cleanups.push(async () => {
      svc!.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    });
    const r = await svc.suspend('mallory', 'dumping', 'olga');
    expect(live).toBe(false);
    expect(r.sessionsEnded).toEqual(['s-1']);
  });

  it('suspend: checked in memory at once, sessions ended here at once and on the other instance within a poll; audited; resume lifts it everywhere', async () => {
    const { a, b, ended, audit } = await twoInstances();
    expect(a.check('mallory')).toBeUndefined();
    const r = await a.suspend('mallory', '  dumping\n the customers table ', 'olga');
    expect(r.record.reason).toBe('dumping the customers table');
    expect(r.sessionsEnded).toEqual(['s-a']);
    expect(a.check('mallory')?.suspendedBy).toBe('olga');
    expect(ended.a).toEqual(['terminating connection: identity mallory was suspended by olga: dumping the customers table']);
    expect(audit).toEqual([['identity.suspended', { identity: 'mallory', reason: 'dumping the customers table', by: 'olga', sessions_ended: ['s-a'] }]]);
    for (let i = 0; i < 40 && !b.check('mallory'); i++) await sleep(25);
    expect(b.check('mallory')?.reason).toBe('dumping the customers table');
    expect(ended.b).toHaveLength(1);
    expect(b.check('alice')).toBeUndefined();

    await expect(b.resume('alice', 'olga')).rejects.toThrow('identity alice is not suspended');
    await expect(a.suspend('x\ny', 'r', 'olga')).rejects.toMatchObject({ status: 400 });
    await expect(a.suspend('', 'r', 'olga')).rejects.toMatchObject({ status: 400 });
    const was = await a.resume('mallory', 'pat');
    expect(was.suspendedBy).toBe('olga');
    expect(a.check('mallory')).toBeUndefined();
    expect(audit[1]).toEqual(['identity.resumed', { identity: 'mallory', by: 'pat', suspended_by: 'olga', suspended_at: was.suspendedAt, reason: 'dumping the customers table' }]);
    for (let i = 0; i < 40 && b.check('mallory'); i++) await sleep(25);
    expect(b.check('mallory')).toBeUndefined();
  });

  it('a store that cannot be read keeps the last known suspensions in force', async () => {
    const { b, storeB } = await twoInstances();
    await b.suspend('mallory', 'x', 'olga');
    await storeB.close();
    await expect(b.refresh()).rejects.toThrow(/closed/);
    expect(b.check('mallory')?.reason).toBe('x');
  });

  it('reasons are required, one line, capped; the termination names the suspension', () => {
    expect(() => cleanReason('  ')).toThrow(SuspensionError);
    expect(() => cleanReason(undefined)).toThrow('a reason is required');
    expect(cleanReason('x'.repeat(600))).toHaveLength(501);
    const s: SuspensionRecord = { identity: 'bob', reason: 'r', suspendedBy: 'olga', suspendedAt: new Date().toISOString() };
    expect(suspensionTermination(s)).toMatchObject({ code: '57P01', message: 'terminating connection: identity bob was suspended by olga: r' });
  });
});

describe('listedSql', () => {
  beforeAll(async () => {
    await initSqlParser();
  });

  it('redacts secrets as the audit does, normalizes constants when sensitive columns are declared, caps the text', () => {
    expect(listedSql("ALTER ROLE bob PASSWORD 's3cret'", false)).toBe("ALTER ROLE bob PASSWORD '<redacted>'");
    expect(listedSql("SELECT * FROM t WHERE ssn = '123-45-6789'", false)).toContain('123-45-6789');
    expect(listedSql("SELECT * FROM t WHERE ssn = '123-45-6789'", true)).not.toContain('123-45-6789');
    const long = `SELECT ${'1, '.repeat(2000)}1`;
    const shown = listedSql(long, false, 100);
    expect(shown.startsWith(long.slice(0, 100))).toBe(true);
    expect(shown).toContain(`…(${long.length} chars)`);
  });
});

describe('sessions list output', () => {
  const base: ListedSession = {
    id: '3f9a1c0e2b7d',
    identity: 'etl',
    kind: 'agent',
    on_behalf_of: 'alice',
    auth: 'token',
    database: 'app',
    client_address: '10.0.0.7',
    client_port: 51234,
    tls: true,
    tls_version: 'TLSv1.3',
    application_name: null,
    started_at: new Date(Date.parse('2026-01-01T10:00:00Z')).toISOString(),
    state: 'waiting for approval',
    approval_request: 'apr_1',
    statement: `DELETE\nFROM  t WHERE id IN (${'1,'.repeat(50)}1)`,
    statement_started_at: null,
    statement_duration_ms: 12_300,
  };

  it('one aligned line per session: who (for whom), TLS, age, state with the request, the statement on one line, cut, with its duration', () => {
    const text = formatSessions([base, { ...base, id: 'aa', identity: 'bob', on_behalf_of: null, tls: false, state: 'idle', approval_request: null, statement: null, statement_duration_ms: null }], Date.parse('2026-01-01T12:03:00Z'));
    const [head, one, two] = text.split('\n');
    expect(head.startsWith('ID ')).toBe(true);
    expect(one).toContain('etl (for alice)');
    expect(one).toContain('10.0.0.7 TLSv1.3');
    expect(one).toContain('2h03m');
    expect(one).toContain('waiting for approval (apr_1)');
    expect(one).toContain('DELETE FROM t WHERE id IN (1,');
    expect(one).toContain('… [12.3s]');
    expect(two.indexOf('idle')).toBe(one.indexOf('waiting'));
    expect(formatSessions([])).toBe('no sessions');
  });

  it('durations as people read them', () => {
    expect([850, 12_345, 245_000, 7_380_000].map(humanDuration)).toEqual(['850ms', '12.3s', '4m05s', '2h03m']);
  });
});
