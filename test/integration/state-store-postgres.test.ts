/**
 * The postgres state store against a real PostgreSQL: the StateStore contract
 * (shared with the sqlite store, two stores on one schema), plus schema
 * creation, password redaction and the LISTEN/NOTIFY + poll watch paths.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type PgCluster, startPgCluster } from '../../src/embedded/pg-cluster.js';
import { newId } from '../../src/store/ids.js';
import { openStateStore } from '../../src/store/open.js';
import { openPostgresState } from '../../src/store/postgres.js';
import type { StateStore } from '../../src/store/types.js';
import { request, stateStoreContract } from '../unit/state-store-sqlite.test.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('postgres state store', () => {
  let cluster: PgCluster;
  let url: string;

  beforeAll(async () => {
    cluster = await startPgCluster();
    url = cluster.url('postgres');
  });

  afterAll(async () => {
    await cluster?.stop();
  });

  describe('contract (two stores on one schema)', () => {
    stateStoreContract(async () => {
      const schema = newId('st');
      const a = await openPostgresState(url, { schema });
      const b = await openPostgresState(url, { schema });
      return { a, b, cleanup: async () => void (await cluster.query(`DROP SCHEMA "${schema}" CASCADE`)) };
    });
  });

  it('description and errors never show the password', async () => {
    const s = await openPostgresState(url, { schema: newId('st') });
    try {
      expect(s.description).toBe(`postgres://postgres@127.0.0.1:${cluster.port}/postgres`);
      expect(s.description).not.toContain(cluster.superPassword);
    } finally {
      await s.close();
    }
    const wrong = cluster.url('postgres', 'postgres', 'not-the-password-xyz');
    const err = await openPostgresState(wrong).catch((e: unknown) => e as Error);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(/postgres state store postgres:\/\/postgres@127\.0\.0\.1:\d+\/postgres: open failed: .*password authentication failed/);
    expect((err as Error).message).not.toContain('not-the-password-xyz');
    await expect(openPostgresState('mysql://x@y/z')).rejects.toThrow(/invalid URL scheme/);
  });

  it('creates the default schema once, even when several Wardens start at once', async () => {
    const stores = await Promise.all([openPostgresState(url), openPostgresState(url), openStateStore({ kind: 'postgres', location: url })]);
    try {
      const r = await cluster.query(
        `SELECT table_name FROM information_schema.tables WHERE table_schema = 'warden_state' ORDER BY table_name`,
      );
      expect(r.rows.map((x: { table_name: string }) => x.table_name)).toEqual(['approval_decisions', 'approval_requests', 'grants', 'limit_counters', 'meta', 'suspensions', 'tokens']);
      const v = await cluster.query(`SELECT value FROM warden_state.meta WHERE key = 'state_schema_version'`);
      expect(v.rows).toEqual([{ value: '1' }]);
      const req = await stores[0].createRequest(request());
      expect((await stores[2].getRequest(req.id))?.status).toBe('pending');
    } finally {
      await Promise.all(stores.map((s) => s.close()));
    }
  });

  it('adds the limit_counters table to a version-1 schema made before it existed', async () => {
    const schema = newId('st');
    await (await openPostgresState(url, { schema })).close();
    await cluster.query(`DROP TABLE "${schema}".limit_counters`);
    const s = await openPostgresState(url, { schema });
    try {
      const hour = Date.parse('2026-03-02T10:00:00.000Z');
      const t = await s.syncLimitCounts([{ kind: 'rows', limit: 'hourly', identity: 'bob', window: hour, count: 3 }], { statements: hour, rows: hour });
      expect(t).toEqual([{ kind: 'rows', limit: 'hourly', identity: 'bob', window: hour, count: 3 }]);
    } finally {
      await s.close();
    }
  });

  it('adds the suspensions table to a version-1 schema made before it existed', async () => {
    const schema = newId('st');
    await (await openPostgresState(url, { schema })).close();
    await cluster.query(`DROP TABLE "${schema}".suspensions`);
    const s = await openPostgresState(url, { schema });
    try {
      await s.putSuspension({ identity: 'bob', reason: 'r', suspendedBy: 'olga', suspendedAt: new Date().toISOString() });
      expect((await s.listSuspensions()).map((x) => x.identity)).toEqual(['bob']);
    } finally {
      await s.close();
    }
  });

  it('refuses a schema of a newer version', async () => {
    const schema = newId('st');
    await (await openPostgresState(url, { schema })).close();
    await cluster.query(`UPDATE "${schema}".meta SET value = '99' WHERE key = 'state_schema_version'`);
    await expect(openPostgresState(url, { schema })).rejects.toThrow(/state schema version 99.*newer Warden/);
  });

  describe('watch', () => {
    let a: StateStore;
    let b: StateStore;
    beforeAll(async () => {
      const schema = newId('st');
      a = await openPostgresState(url, { schema });
      b = await openPostgresState(url, { schema });
    });
    afterAll(async () => {
      await a?.close();
      await b?.close();
    });

    async function timeToFire(change: (id: string) => Promise<unknown>): Promise<number> {
      const r = await a.createRequest(request());
      let fired = 0;
      const stop = b.watch!(r.id, () => {
        if (fired === 0) fired = Date.now();
      });
      await sleep(50);
      const t0 = Date.now();
      await change(r.id);
      while (fired === 0 && Date.now() - t0 < 3000) await sleep(10);
      stop();
      return fired === 0 ? Infinity : fired - t0;
    }

    it('suspensions: NOTIFY tells another instance at once, on suspend and on resume', async () => {
      let told = 0;
      const stop = b.watchSuspensions!(() => told++);
      try {
        const t0 = Date.now();
        await a.putSuspension({ identity: 'mallory', reason: 'r', suspendedBy: 'olga', suspendedAt: new Date().toISOString() });
        while (told === 0 && Date.now() - t0 < 3000) await sleep(10);
        expect(Date.now() - t0).toBeLessThan(500);
        await a.deleteSuspension('mallory');
        while (told === 1 && Date.now() - t0 < 3000) await sleep(10);
        expect(told).toBe(2);
        expect(await a.deleteSuspension('mallory')).toBeNull(); // nothing deleted: nothing announced
        await sleep(100);
        expect(told).toBe(2);
      } finally {
        stop();
      }
    });

    it('NOTIFY tells another instance at once (well before the 1 s poll)', async () => {
      const ms = await timeToFire((id) => a.setStatus(id, 'pending', 'approved', new Date().toISOString()));
      expect(ms).toBeLessThan(500);
    });

    it('the poll still tells it when the listener connections are killed', async () => {
      // Kill every LISTEN connection (both stores'): only the 1 s poll is left until they reconnect.
      const killed = await cluster.query(
        `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'LISTEN warden_state_requests%' AND pid <> pg_backend_pid()`,
      );
      expect(killed.rowCount).toBeGreaterThanOrEqual(2);
      await sleep(100);
      const ms = await timeToFire((id) =>
        a.addDecision(id, { approver: 'dana', decision: 'approve', reason: 'ok', at: new Date().toISOString() }, () => 'approved'),
      );
      expect(ms).toBeLessThan(2000);

      // ...and the listener comes back (reopened by the poll loop).
      await sleep(1500);
      const again = await timeToFire((id) => a.setStatus(id, 'pending', 'cancelled', new Date().toISOString()));
      expect(again).toBeLessThan(500);
    });
  });
});
