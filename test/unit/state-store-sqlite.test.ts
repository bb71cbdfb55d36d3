/**
 * The sqlite state store, and the contract every StateStore meets
 * (`stateStoreContract`, also run against PostgreSQL by
 * test/integration/state-store-postgres.test.ts).
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import Database from 'better-sqlite3';
import ts from 'typescript';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { newId } from '../../src/store/ids.js';
import { openStateStore } from '../../src/store/open.js';
import { openSqliteState } from '../../src/store/sqlite.js';
import type { ApprovalRequest, ApprovalStatus, GrantRecord, NewApprovalRequest, StateStore, TokenRecord } from '../../src/store/types.js';

/* ------------------------------------------------------------------------------------------ */
/* The contract                                                                                */
/* ------------------------------------------------------------------------------------------ */

/** Two stores on the same data (two Warden instances), and how to drop it. */
export interface StorePair {
  a: StateStore;
  b: StateStore;
  cleanup?: () => Promise<void>;
}

const HOUR = 3_600_000;
const iso = (ms: number): string => new Date(ms).toISOString();
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export function token(over: Partial<TokenRecord> = {}): TokenRecord {
  return {
    id: newId('tok'),
    identity: 'alice',
    verifier: 'SCRAM-SHA-256$4096:c2FsdA==$c3RvcmVk:c2VydmVy',
    createdAt: iso(Date.now() - HOUR),
    expiresAt: iso(Date.now() + HOUR),
    ...over,
  };
}

export function request(over: Partial<NewApprovalRequest> = {}): NewApprovalRequest {
  return {
    id: newId('apr'),
    identity: 'alice',
    database: 'app',
    sql: 'DELETE FROM customers WHERE id = $1',
    fingerprint: 'fp-1',
    params: ['42', null],
    rules: [{ rule: 'deletes-need-approval', reason: 'destructive', groups: ['dba'], count: 2 }],
    tables: ['public.customers'],
    classes: ['write'],
    intent: { ticket: 'OPS-1', why: 'cleanup "é" \u2028' },
    instance: 'w1',
    session: 's1',
    mode: 'reject',
    createdAt: iso(Date.now()),
    expiresAt: iso(Date.now() + HOUR),
    ...over,
  };
}

export function grant(over: Partial<GrantRecord> = {}): GrantRecord {
  return {
    id: newId('grt'),
    identity: 'alice',
    rule: 'deletes-need-approval',
    database: 'app',
    requestId: newId('apr'),
    createdAt: iso(Date.now() - 60_000),
    expiresAt: iso(Date.now() + HOUR),
    ...over,
  };
}

/** Quorum of two approvals; any deny denies. */
const twoApprovals = (r: ApprovalRequest): ApprovalStatus =>
  r.decisions.some((d) => d.decision === 'deny') ? 'denied' : r.decisions.filter((d) => d.decision === 'approve').length >= 2 ? 'approved' : 'pending';

const approve = (approver: string, at = iso(Date.now())) => ({ approver, decision: 'approve' as const, reason: `ok by ${approver}`, at });

/** Resolves once `check()` is true (polling every 20 ms), or rejects after `ms`. */
async function eventually(check: () => boolean, ms: number, what: string): Promise<number> {
  const t0 = Date.now();
  while (!check()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(20);
  }
  return Date.now() - t0;
}

/** The behaviour every StateStore must have; `open` gives two instances on the same fresh data. */
export function stateStoreContract(open: () => Promise<StorePair>): void {
  const pairs: StorePair[] = [];
  const pair = async (): Promise<StorePair> => {
    const p = await open();
    pairs.push(p);
    return p;
  };
  afterEach(async () => {
    for (const p of pairs.splice(0)) {
      await p.a.close();
      await p.b.close();
      await p.cleanup?.();
    }
  });

  it('limit counters: increments from two instances at once are all kept; totals of the current windows; old windows pruned', async () => {
    const { a, b } = await pair();
    const hour = Date.parse('2026-03-02T10:00:00.000Z');
    const minute = hour + 20 * 60_000;
    const since = { statements: minute, rows: hour };
    const rows = (n: number, identity = 'bob') => ({ kind: 'rows' as const, limit: 'hourly', identity, window: hour, count: n });
    const stmts = (n: number, window = minute) => ({ kind: 'statements' as const, limit: 'rate', identity: 'bob', window, count: n });
    expect(await a.syncLimitCounts([], since)).toEqual([]);
    // 20 exchanges at once, from both instances, each adding to the same rows (duplicates merged).
    const all = await Promise.all(
      Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? a.syncLimitCounts([rows(1), stmts(1), rows(2)], since) : b.syncLimitCounts([rows(10), stmts(2)], since))),
    );
    for (const totals of all) expect(totals.length).toBe(2);
    const byKind = (t: Awaited<ReturnType<StateStore['syncLimitCounts']>>) => Object.fromEntries(t.map((x) => [x.kind, x.count]));
    expect(byKind(await b.syncLimitCounts([], since))).toEqual({ rows: 10 * 3 + 10 * 10, statements: 10 * 1 + 10 * 2 });
    // The totals include the exchange's own adds; other windows are not read.
    const before = { statements: 60 * 60_000, rows: hour - 3_600_000 };
    const t = await a.syncLimitCounts([rows(5, 'alice'), stmts(7, minute - 60_000), { ...rows(3), window: hour - 3_600_000 }], since);
    expect(t.map((x) => `${x.kind}:${x.identity}:${x.window === hour || x.window === minute ? 'now' : 'old'}:${x.count}`).sort()).toEqual([
      'rows:alice:now:5',
      'rows:bob:now:130',
      'statements:bob:now:30',
    ]);
    expect((await a.syncLimitCounts([], before)).length).toBe(5);
    // Pruned: windows that started before the bound, in the same exchange.
    // (the previous hour goes; the previous minute started after the bound and stays).
    expect((await b.syncLimitCounts([], before, hour)).length).toBe(4);
    const left = await a.syncLimitCounts([], { statements: 0, rows: 0 });
    expect(left.filter((x) => x.window < hour)).toEqual([]);
    expect(left).toHaveLength(4);
    await expect(a.syncLimitCounts([{ ...rows(1), count: -1 }], since)).rejects.toThrow(/invalid limit count/);
  });

  it('suspensions: put (again: replaced), seen by the other instance, deleted once', async () => {
    const { a, b } = await pair();
    expect(await b.listSuspensions()).toEqual([]);
    const s1 = { identity: 'mallory', reason: 'dumping tables', suspendedBy: 'olga', suspendedAt: iso(Date.now() - HOUR) };
    expect(await a.putSuspension(s1)).toEqual(s1);
    await a.putSuspension({ identity: 'bob', reason: 'r', suspendedBy: 'olga', suspendedAt: iso(Date.now()) });
    expect((await b.listSuspensions()).map((s) => s.identity)).toEqual(['bob', 'mallory']);
    const s2 = { ...s1, reason: 'still dumping', suspendedBy: 'pat', suspendedAt: iso(Date.now()) };
    await b.putSuspension(s2);
    expect((await a.listSuspensions()).find((s) => s.identity === 'mallory')).toEqual(s2);
    expect(await a.deleteSuspension('mallory')).toEqual(s2);
    expect(await b.deleteSuspension('mallory')).toBeNull();
    expect((await b.listSuspensions()).map((s) => s.identity)).toEqual(['bob']);
  });

  it('tokens: put, get, list newest first (all includes expired and revoked), revoke once', async () => {
    const { a, b } = await pair();
    const now = Date.now();
    const t1 = token({ createdAt: iso(now - 3 * HOUR), onBehalfOf: 'svc', scope: 'app', issuedBy: 'cli:root' });
    const t2 = token({ createdAt: iso(now - 2 * HOUR), identity: 'bob' });
    const expired = token({ createdAt: iso(now - 4 * HOUR), expiresAt: iso(now - HOUR) });
    const t3 = token({ createdAt: iso(now - HOUR) });
    for (const t of [t1, t2, expired, t3]) await a.putToken(t);

    expect(await b.getToken(t1.id)).toEqual(t1);
    expect(await b.getToken(t2.id)).toEqual(t2);
    expect(await b.getToken('tok_nope')).toBeNull();
    await expect(a.putToken(t1)).rejects.toThrow(`token ${t1.id} already exists`);

    expect((await b.listTokens()).map((t) => t.id)).toEqual([t3.id, t2.id, t1.id]);
    expect((await b.listTokens({ identity: 'alice' })).map((t) => t.id)).toEqual([t3.id, t1.id]);
    expect((await b.listTokens({ all: true })).map((t) => t.id)).toEqual([t3.id, t2.id, t1.id, expired.id]);

    const at = iso(now);
    expect(await b.revokeToken(t1.id, at)).toBe(true);
    expect(await a.revokeToken(t1.id, at)).toBe(false);
    expect(await a.revokeToken('tok_nope', at)).toBe(false);
    expect(await a.getToken(t1.id)).toEqual({ ...t1, revokedAt: at });
    expect((await a.listTokens()).map((t) => t.id)).toEqual([t3.id, t2.id]);
    expect((await a.listTokens({ identity: 'alice', all: true })).map((t) => t.id)).toEqual([t3.id, t1.id, expired.id]);
  });

  it('requests: create, get, list by status / identity / limit, newest first', async () => {
    const { a, b } = await pair();
    const now = Date.now();
    const r1 = request({ createdAt: iso(now - 3000), environment: 'prod', onBehalfOf: 'svc', grantMinutes: 30, mode: 'hold' });
    const r2 = request({ createdAt: iso(now - 2000), identity: 'bob', params: undefined, session: undefined });
    const r3 = request({ createdAt: iso(now - 1000) });

    const created = await a.createRequest(r1);
    expect(created).toEqual({ ...r1, status: 'pending', decisions: [] });
    expect(created.decidedAt).toBeUndefined();
    await a.createRequest(r2);
    await a.createRequest(r3);
    await expect(a.createRequest(r1)).rejects.toThrow(`approval request ${r1.id} already exists`);

    expect(await b.getRequest(r1.id)).toEqual(created);
    expect(await b.getRequest(r2.id)).toEqual({ ...r2, status: 'pending', decisions: [] });
    expect(await b.getRequest('apr_nope')).toBeNull();

    expect(await a.setStatus(r2.id, 'pending', 'cancelled', iso(now))).toBe(true);
    expect((await b.listRequests()).map((r) => r.id)).toEqual([r3.id, r2.id, r1.id]);
    expect((await b.listRequests({ status: 'pending' })).map((r) => r.id)).toEqual([r3.id, r1.id]);
    expect((await b.listRequests({ status: 'cancelled' })).map((r) => r.id)).toEqual([r2.id]);
    expect((await b.listRequests({ status: 'approved' })).map((r) => r.id)).toEqual([]);
    expect((await b.listRequests({ identity: 'alice', limit: 1 })).map((r) => r.id)).toEqual([r3.id]);
    expect((await b.listRequests({ identity: 'bob', status: 'cancelled' }))[0]).toMatchObject({ id: r2.id, decidedAt: iso(now) });
    await expect(b.listRequests({ limit: 0 })).rejects.toThrow(/invalid limit/);
  });

  it('addDecision: quorum through next(), one decision per approver, only while pending', async () => {
    const { a, b } = await pair();
    const r = await a.createRequest(request());
    const t0 = Date.now();

    const first = await a.addDecision(r.id, approve('dana', iso(t0)), twoApprovals);
    expect(first.status).toBe('pending');
    expect(first.decidedAt).toBeUndefined();
    expect(first.decisions).toEqual([approve('dana', iso(t0))]);

    await expect(b.addDecision(r.id, approve('dana'), twoApprovals)).rejects.toThrow(`dana already decided request ${r.id}`);
    // A failing next() stores nothing.
    await expect(
      b.addDecision(r.id, approve('erin'), () => {
        throw new Error('policy exploded');
      }),
    ).rejects.toThrow('policy exploded');
    expect((await a.getRequest(r.id))?.decisions).toHaveLength(1);

    const seen: ApprovalRequest[] = [];
    const second = await b.addDecision(r.id, approve('erin', iso(t0 + 1000)), (x) => (seen.push(x), twoApprovals(x)));
    // next() sees the request with the new decision, still pending.
    expect(seen[0].status).toBe('pending');
    expect(seen[0].decisions.map((d) => d.approver)).toEqual(['dana', 'erin']);
    expect(second.status).toBe('approved');
    expect(second.decidedAt).toBe(iso(t0 + 1000));
    expect(await a.getRequest(r.id)).toEqual(second);

    await expect(a.addDecision(r.id, approve('fred'), twoApprovals)).rejects.toThrow(`approval request ${r.id} is approved, not pending`);
    await expect(a.addDecision('apr_nope', approve('fred'), twoApprovals)).rejects.toThrow('approval request apr_nope not found');

    const denied = await a.createRequest(request());
    const d = await b.addDecision(denied.id, { approver: 'dana', decision: 'deny', reason: 'no', at: iso(t0) }, twoApprovals);
    expect(d).toMatchObject({ status: 'denied', decidedAt: iso(t0), decisions: [{ approver: 'dana', decision: 'deny', reason: 'no' }] });
    await expect(a.addDecision(denied.id, approve('erin'), twoApprovals)).rejects.toThrow('is denied, not pending');

    const other = await a.createRequest(request());
    await expect(a.addDecision(other.id, approve('dana'), () => 'bogus' as ApprovalStatus)).rejects.toThrow(/invalid next status "bogus"/);
    expect((await a.getRequest(other.id))?.decisions).toEqual([]);
  });

  it('concurrent addDecision on two instances: no decision is lost', async () => {
    const { a, b } = await pair();
    const r = await a.createRequest(request());
    const n = 12;
    const quorum = (x: ApprovalRequest): ApprovalStatus => (x.decisions.length >= n ? 'approved' : 'pending');
    const results = await Promise.all(
      Array.from({ length: n }, (_, i) => (i % 2 === 0 ? a : b).addDecision(r.id, approve(`approver${i}`), quorum)),
    );
    expect(results.filter((x) => x.status === 'approved')).toHaveLength(1);
    const final = await a.getRequest(r.id);
    expect(final?.status).toBe('approved');
    expect(new Set(final?.decisions.map((d) => d.approver))).toEqual(new Set(Array.from({ length: n }, (_, i) => `approver${i}`)));

    // The same approver on both instances at once: exactly one lands.
    const r2 = await a.createRequest(request());
    const both = await Promise.allSettled([a.addDecision(r2.id, approve('dana'), twoApprovals), b.addDecision(r2.id, approve('dana'), twoApprovals)]);
    expect(both.filter((x) => x.status === 'fulfilled')).toHaveLength(1);
    const rejected = both.find((x) => x.status === 'rejected');
    expect(String((rejected as PromiseRejectedResult).reason)).toContain(`dana already decided request ${r2.id}`);
    expect((await b.getRequest(r2.id))?.decisions).toHaveLength(1);
  });

  it('setStatus race: exactly one of pending→cancelled and pending→approved wins', async () => {
    const { a, b } = await pair();
    for (let i = 0; i < 5; i++) {
      const r = await a.createRequest(request());
      const at = iso(Date.now());
      const [cancelled, approved] = await Promise.all([a.setStatus(r.id, 'pending', 'cancelled', at), b.setStatus(r.id, 'pending', 'approved', at)]);
      expect(Number(cancelled) + Number(approved)).toBe(1);
      const final = await a.getRequest(r.id);
      expect(final?.status).toBe(cancelled ? 'cancelled' : 'approved');
      expect(final?.decidedAt).toBe(at);
    }
    expect(await a.setStatus('apr_nope', 'pending', 'approved', iso(Date.now()))).toBe(false);
    const r = await a.createRequest(request());
    await expect(a.setStatus(r.id, 'pending', 'nope' as ApprovalStatus, iso(Date.now()))).rejects.toThrow(/invalid to status/);
  });

  it('findApproved: identity, fingerprint, expiry, reject mode, approved and not used', async () => {
    const { a, b } = await pair();
    const now = Date.now();
    const at = iso(now);
    const r = await a.createRequest(request({ fingerprint: 'fp-x', expiresAt: iso(now + HOUR) }));
    expect(await b.findApproved('alice', 'fp-x', at)).toBeNull(); // pending

    expect(await a.setStatus(r.id, 'pending', 'approved', at)).toBe(true);
    expect((await b.findApproved('alice', 'fp-x', at))?.id).toBe(r.id);
    expect(await b.findApproved('bob', 'fp-x', at)).toBeNull();
    expect(await b.findApproved('alice', 'fp-y', at)).toBeNull();
    expect(await b.findApproved('alice', 'fp-x', iso(now + HOUR))).toBeNull(); // expired (expiresAt is exclusive)
    expect((await b.findApproved('alice', 'fp-x', iso(now + HOUR - 1)))?.id).toBe(r.id);

    // hold-mode approvals are for the held statement only
    const hold = await a.createRequest(request({ fingerprint: 'fp-h', mode: 'hold' }));
    await a.setStatus(hold.id, 'pending', 'approved', at);
    expect(await b.findApproved('alice', 'fp-h', at)).toBeNull();

    // used once: gone
    expect(await b.setStatus(r.id, 'approved', 'used', iso(now + 1000))).toBe(true);
    expect(await a.findApproved('alice', 'fp-x', at)).toBeNull();
    // decidedAt stays the approval time
    expect((await a.getRequest(r.id))?.decidedAt).toBe(at);

    // denied ones never count
    const denied = await a.createRequest(request({ fingerprint: 'fp-d' }));
    await a.setStatus(denied.id, 'pending', 'denied', at);
    expect(await b.findApproved('alice', 'fp-d', at)).toBeNull();
  });

  it('grants: activeGrants excludes expired and revoked; listGrants all / active', async () => {
    const { a, b } = await pair();
    const now = Date.now();
    const active = grant({ createdAt: iso(now - 3000) });
    const noDb = grant({ createdAt: iso(now - 2000), database: undefined });
    const expired = grant({ createdAt: iso(now - 2 * HOUR), expiresAt: iso(now - HOUR) });
    const revoked = grant({ createdAt: iso(now - 1000) });
    const bobs = grant({ identity: 'bob', createdAt: iso(now - 500) });
    for (const g of [active, noDb, expired, revoked, bobs]) await a.putGrant(g);
    await expect(a.putGrant(active)).rejects.toThrow(`grant ${active.id} already exists`);

    const at = iso(now);
    expect(await b.revokeGrant(revoked.id, at)).toBe(true);
    expect(await a.revokeGrant(revoked.id, at)).toBe(false);
    expect(await a.revokeGrant('grt_nope', at)).toBe(false);

    expect(await b.activeGrants('alice', at)).toEqual([noDb, active]);
    expect((await b.activeGrants('bob', at)).map((g) => g.id)).toEqual([bobs.id]);
    expect(await b.activeGrants('alice', iso(now + 2 * HOUR))).toEqual([]);
    expect((await b.activeGrants('alice', iso(now - 90 * 60_000))).map((g) => g.id)).toEqual([noDb.id, active.id, expired.id]);

    expect((await a.listGrants()).map((g) => g.id)).toEqual([bobs.id, noDb.id, active.id]);
    expect((await a.listGrants({ all: true })).map((g) => g.id)).toEqual([bobs.id, revoked.id, noDb.id, active.id, expired.id]);
    expect((await a.listGrants({ all: true })).find((g) => g.id === revoked.id)?.revokedAt).toBe(at);
  });

  it('watch(): fires within 2 s after a change through another instance; unsubscribe stops it', async () => {
    const { a, b } = await pair();
    expect(typeof b.watch).toBe('function');
    const r = await a.createRequest(request());
    let calls = 0;
    const stop = b.watch!(r.id, () => calls++);
    await sleep(300); // no change, no call
    expect(calls).toBe(0);

    const t0 = Date.now();
    await a.addDecision(r.id, approve('dana'), twoApprovals);
    await eventually(() => calls >= 1, 2000, 'watch after a decision');
    expect(Date.now() - t0).toBeLessThan(2000);

    const before = calls;
    await a.setStatus(r.id, 'pending', 'cancelled', iso(Date.now()));
    await eventually(() => calls > before, 2000, 'watch after a status change');

    // Unsubscribed: no more calls, while another watcher of the same request still gets them.
    let others = 0;
    const stopOther = b.watch!(r.id, () => others++);
    await sleep(100);
    stop();
    const after = calls;
    await a.setStatus(r.id, 'cancelled', 'expired', iso(Date.now()));
    await eventually(() => others >= 1, 2000, 'the other watcher');
    await sleep(1300);
    expect(calls).toBe(after);
    stopOther();
  });
}

/* ------------------------------------------------------------------------------------------ */
/* sqlite                                                                                      */
/* ------------------------------------------------------------------------------------------ */

/** Transpiles src/store to plain JS in `dir` so child processes (plain node) can load it. */
function buildStoreForChildren(dir: string): void {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const root = path.resolve(here, '../..');
  const out = path.join(dir, 'store');
  mkdirSync(out, { recursive: true });
  mkdirSync(path.join(dir, 'util'), { recursive: true });
  for (const name of ['store/common', 'store/ids', 'store/sqlite', 'store/types', 'util/private-file']) {
    const src = readFileSync(path.join(root, 'src', `${name}.ts`), 'utf8');
    const js = ts.transpileModule(src, {
      compilerOptions: { module: ts.ModuleKind.ES2022, target: ts.ScriptTarget.ES2022 },
      fileName: `${path.basename(name)}.ts`,
    }).outputText;
    writeFileSync(path.join(dir, `${name}.js`), js);
  }
  writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ type: 'module' }));
  symlinkSync(path.join(root, 'node_modules'), path.join(dir, 'node_modules'), 'dir');
  writeFileSync(
    path.join(dir, 'child.js'),
    `
import { openSqliteState } from './store/sqlite.js';
const [file, who, ids, n, quorum, startAt] = process.argv.slice(2);
const store = await openSqliteState(file);
// Start together, so the writers really contend.
await new Promise((r) => setTimeout(r, Math.max(0, Number(startAt) - Date.now())));
const out = { decided: 0, won: [] };
const next = (r) => (r.decisions.length >= Number(quorum) ? 'approved' : 'pending');
const [decideId, ...raceIds] = ids.split(',');
for (let i = 0; i < Number(n); i++) {
  await store.addDecision(decideId, { approver: who + '-' + i, decision: 'approve', reason: '', at: new Date().toISOString() }, next);
  out.decided++;
  const race = raceIds[i];
  if (race && (await store.setStatus(race, 'pending', who === 'p0' ? 'cancelled' : 'approved', new Date().toISOString()))) out.won.push(race);
}
await store.close();
process.stdout.write(JSON.stringify(out));
`,
  );
}

// Register the sqlite suites only when this file is the test being run (the postgres test
// imports the contract from here and must not run them again).
if (expect.getState().testPath === fileURLToPath(import.meta.url)) {
  describe('sqlite state store', () => {
    let dir: string;
    beforeAll(() => {
      dir = mkdtempSync(path.join(os.tmpdir(), 'warden-state-'));
    });
    afterAll(() => {
      rmSync(dir, { recursive: true, force: true });
    });

    describe('contract (two opens of one file)', () => {
      stateStoreContract(async () => {
        const file = path.join(dir, `${newId('db')}.db`);
        return { a: await openSqliteState(file), b: await openSqliteState(file) };
      });
    });

    it(':memory: works (one instance)', async () => {
      const s = await openSqliteState(':memory:');
      try {
        expect(s.description).toBe('sqlite::memory:');
        const r = await s.createRequest(request());
        let calls = 0;
        const stop = s.watch!(r.id, () => calls++);
        const after = await s.addDecision(r.id, approve('dana'), twoApprovals);
        expect(after.decisions).toHaveLength(1);
        await eventually(() => calls === 1, 2000, 'watch on :memory:');
        stop();
        await s.putToken(token());
        expect(await s.listTokens()).toHaveLength(1);
      } finally {
        await s.close();
      }
      await s.close(); // idempotent
      await expect(s.getToken('x')).rejects.toThrow('store is closed');
    });

    it('creates the file with mode 0600, WAL, synchronous FULL, and a schema version', async () => {
      const file = path.join(dir, 'mode.db');
      const s = await openSqliteState(file);
      await s.putToken(token());
      expect(s.description).toBe(`sqlite:${file}`);
      expect(statSync(file).mode & 0o777).toBe(0o600);
      expect(statSync(`${file}-wal`).mode & 0o777).toBe(0o600);
      await s.close();

      const db = new Database(file);
      try {
        expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
        expect(db.prepare("SELECT value FROM meta WHERE key = 'state_schema_version'").pluck().get()).toBe('1');
        const indexes = db.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_%' ORDER BY name").pluck().all();
        expect(indexes).toEqual([
          'grants_created',
          'grants_expiry',
          'grants_identity_expiry',
          'limit_counters_window',
          'requests_created',
          'requests_identity_fingerprint',
          'requests_status_created',
          'tokens_created',
          'tokens_identity',
        ]);
      } finally {
        db.close();
      }
      // Reopening keeps the data.
      const again = await openSqliteState(file);
      expect(await again.listTokens()).toHaveLength(1);
      await again.close();
    });

    it('refuses a missing directory, a foreign database and a newer schema, with clear errors', async () => {
      const missing = path.join(dir, 'no', 'such', 'dir');
      await expect(openSqliteState(path.join(missing, 'state.db'))).rejects.toThrow(`directory ${missing} does not exist`);
      await expect(openSqliteState('')).rejects.toThrow(/needs a file path/);

      const foreign = path.join(dir, 'foreign.db');
      const f = new Database(foreign);
      f.exec('CREATE TABLE stuff (x)');
      f.close();
      await expect(openSqliteState(foreign)).rejects.toThrow(/not a Warden state database/);

      const newer = path.join(dir, 'newer.db');
      await (await openSqliteState(newer)).close();
      const n = new Database(newer);
      n.prepare("UPDATE meta SET value = '99' WHERE key = 'state_schema_version'").run();
      n.close();
      await expect(openSqliteState(newer)).rejects.toThrow(/state schema version 99 is not supported .*newer Warden/);
    });

    it('concurrent writers in separate processes lose no update', { timeout: 60_000 }, async () => {
      const build = path.join(dir, 'children');
      buildStoreForChildren(build);
      const file = path.join(dir, 'multi.db');
      const setup = await openSqliteState(file);
      const procs = 4;
      const each = 40;
      const target = await setup.createRequest(request());
      const races: string[] = [];
      for (let i = 0; i < each; i++) races.push((await setup.createRequest(request())).id);
      const ids = [target.id, ...races].join(',');

      const run = promisify(execFile);
      const startAt = String(Date.now() + 1500);
      const outs = await Promise.all(
        Array.from({ length: procs }, (_, p) =>
          run(process.execPath, [path.join(build, 'child.js'), file, `p${p}`, ids, String(each), String(procs * each), startAt]),
        ),
      );
      const results = outs.map((o) => JSON.parse(o.stdout) as { decided: number; won: string[] });

      const final = await setup.getRequest(target.id);
      expect(final?.decisions).toHaveLength(procs * each);
      expect(new Set(final?.decisions.map((d) => d.approver)).size).toBe(procs * each);
      expect(final?.status).toBe('approved');
      // Each raced request has exactly one winner, and its status is the winner's.
      const wins = results.flatMap((r) => r.won);
      expect(wins.sort()).toEqual([...races].sort());
      for (const id of races) {
        const r = await setup.getRequest(id);
        expect(r?.status === 'cancelled').toBe(results[0].won.includes(id));
      }
      await setup.close();
    });

    it('openStateStore: sqlite works, jsonl is refused', async () => {
      const s = await openStateStore({ kind: 'sqlite', location: ':memory:' });
      expect(s.description).toBe('sqlite::memory:');
      await s.close();
      await expect(openStateStore({ kind: 'jsonl', location: path.join(dir, 'x.jsonl') })).rejects.toThrow(/needs sqlite:PATH or postgres/);
    });

    it('newId: prefix, 20 base32 characters, unique', () => {
      const id = newId('apr');
      expect(id).toMatch(/^apr_[0-9a-hjkmnp-tv-z]{20}$/);
      expect(newId('tok_')).toMatch(/^tok_[0-9a-z]{20}$/);
      expect(new Set(Array.from({ length: 1000 }, () => newId('grt'))).size).toBe(1000);
      expect(() => newId('Bad Prefix')).toThrow(/invalid id prefix/);
    });
  });
}
