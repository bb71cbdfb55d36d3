/**
 * The search index (identity/session columns, terms table) is outside the hash
 * chain. Verification compares it with the hashed data and reports every kind of
 * edit as `index-mismatch`; searches re-check each record against its data, so a
 * forged term cannot make a record appear where it does not belong. Both the
 * sqlite and the postgres store, tampered with directly in their database.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AuditRecord, ChainWriter } from '../../src/audit/chain.js';
import { SqliteAuditDb } from '../../src/audit/sqlite-db.js';
import { openSqliteStore } from '../../src/audit/store-sqlite.js';
import { openPostgresStore } from '../../src/audit/store-postgres.js';
import type { AuditQuery, AuditStore } from '../../src/audit/store.js';
import { verifyStore } from '../../src/audit/verify-store.js';
import { type PgCluster, startPgCluster } from '../../src/embedded/pg-cluster.js';
import { runCli } from '../helpers/warden-process.js';
import Fastify from 'fastify';
import { registerAuditRoutes } from '../../src/admin/audit-routes.js';
import type { AuditLog } from '../../src/audit/log.js';

const INSTANCE = 'ix-1';
const T0 = Date.UTC(2026, 0, 1, 10, 0, 0);

/**
 * 40 records: odd seqs statement.begin (identity, session, a table, classes,
 * kinds, decision), even seqs statement.end (identity, session only).
 * Identities alice/bob/carol by seq % 3; tables public.customers (seq % 4 == 1)
 * or billing.cards (seq % 4 == 3); seq 9, 19, 29, 39 denied.
 */
function makeRecords(n = 40): AuditRecord[] {
  const w = new ChainWriter({ instance: INSTANCE });
  const out: AuditRecord[] = [];
  for (let seq = 1; seq <= n; seq++) {
    const identity = ['alice', 'bob', 'carol'][seq % 3];
    const session = `s${seq % 5}`;
    const table = seq % 4 === 1 ? 'public.customers' : 'billing.cards';
    const deny = seq % 10 === 9;
    out.push(
      seq % 2 === 1
        ? w.append(
            deny ? 'statement.refused' : 'statement.begin',
            { identity, session, tables: [table], classes: ['read'], kinds: ['select'], decision: { action: deny ? 'deny' : 'allow' } },
            new Date(T0 + seq * 1000),
          )
        : w.append('statement.end', { identity, session, rows: 1 }, new Date(T0 + seq * 1000)),
    );
  }
  return out;
}

const identityOf = (seq: number): string => ['alice', 'bob', 'carol'][seq % 3];

async function all<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

const seqs = async (s: AuditStore, q: AuditQuery): Promise<number[]> => (await all(s.query(q))).map((r) => r.seq);

async function indexProblems(s: AuditStore): Promise<{ ok: boolean; problems: { seq: number | null; kind: string; message: string }[] }> {
  const results = await verifyStore(s, {});
  return {
    ok: results.every((r) => r.report.ok),
    problems: results.flatMap((r) => r.report.problems).filter((p) => p.kind === 'index-mismatch'),
  };
}

/** One store kind: make a fresh untouched store, run SQL against its database. */
interface Kit {
  fresh(): Promise<{ store: AuditStore; sql(text: string): Promise<void> }>;
}

function tamperTests(kind: string, kit: () => Kit): void {
  describe(`${kind}: verify checks the search index against the hashed records`, () => {
    it('an untouched store passes, its index fully compared', async () => {
      const { store } = await kit().fresh();
      const results = await verifyStore(store, {});
      expect(results).toHaveLength(1);
      expect(results[0].report).toMatchObject({ ok: true, records: 40, problems: [] });
      // 20 begin records x (1 table + action + class + kind) terms.
      expect(results[0].index).toEqual({ records: 40, terms: 20 * 4, mismatched: 0, orphanTerms: 0 });
    });

    it('an edited identity column is reported (and the record is not found under either name)', async () => {
      const { store, sql } = await kit().fresh();
      expect(identityOf(7)).toBe('bob');
      await sql(`UPDATE records SET identity = 'mallory' WHERE seq = 7`);
      const r = await indexProblems(store);
      expect(r.ok).toBe(false);
      expect(r.problems).toEqual([
        expect.objectContaining({ seq: 7, message: expect.stringMatching(/record 7: .*identity column "mallory" but its data says "bob"/) }),
      ]);
      // The forged column cannot make it appear under mallory.
      expect(await seqs(store, { identity: 'mallory' })).toEqual([]);
    });

    it('an emptied identity column is reported', async () => {
      const { store, sql } = await kit().fresh();
      await sql(`UPDATE records SET identity = NULL WHERE seq = 12`);
      const r = await indexProblems(store);
      expect(r.ok).toBe(false);
      expect(r.problems).toEqual([expect.objectContaining({ seq: 12, message: expect.stringMatching(/identity column empty but its data says "alice"/) })]);
    });

    it('an edited session column is reported', async () => {
      const { store, sql } = await kit().fresh();
      await sql(`UPDATE records SET session = 's-other' WHERE seq = 21`);
      const r = await indexProblems(store);
      expect(r.ok).toBe(false);
      expect(r.problems).toEqual([expect.objectContaining({ seq: 21, message: expect.stringMatching(/session column "s-other" but its data says "s1"/) })]);
      expect(await seqs(store, { session: 's-other' })).toEqual([]);
    });

    it('a deleted term is reported', async () => {
      const { store, sql } = await kit().fresh();
      await sql(`DELETE FROM terms WHERE kind = 'table' AND value = 'public.customers' AND seq = 17`);
      const r = await indexProblems(store);
      expect(r.ok).toBe(false);
      expect(r.problems).toEqual([expect.objectContaining({ seq: 17, message: expect.stringMatching(/record 17: .*terms: table "public.customers" missing/) })]);
    });

    it('an added term is reported, and search does not return the record under it', async () => {
      const { store, sql } = await kit().fresh();
      // Record 5 read public.customers only; record 6 is an end record (no terms).
      await sql(`INSERT INTO terms (kind, value, instance, seq) VALUES ('table', 'billing.cards', '${INSTANCE}', 5)`);
      await sql(`INSERT INTO terms (kind, value, instance, seq) VALUES ('action', 'deny', '${INSTANCE}', 6)`);
      const r = await indexProblems(store);
      expect(r.ok).toBe(false);
      expect(r.problems.map((p) => p.seq)).toEqual([5, 6]);
      expect(r.problems[0].message).toMatch(/record 5: .*terms: table "billing.cards" is not in its data/);
      expect(r.problems[1].message).toMatch(/record 6: .*terms: action "deny" is not in its data/);
      expect(await seqs(store, { table: 'billing.cards' })).toEqual([3, 7, 11, 15, 19, 23, 27, 31, 35, 39]);
      expect(await seqs(store, { table: 'cards' })).not.toContain(5);
      expect(await seqs(store, { action: 'deny' })).toEqual([9, 19, 29, 39]);
    });

    it('terms pointing at records that do not exist are reported (also of an instance with no records)', async () => {
      const { store, sql } = await kit().fresh();
      await sql(`INSERT INTO terms (kind, value, instance, seq) VALUES ('action', 'allow', '${INSTANCE}', 41), ('action', 'read', '${INSTANCE}', 41), ('table', 'x.y', '${INSTANCE}', 999)`);
      await sql(`INSERT INTO terms (kind, value, instance, seq) VALUES ('table', 'public.customers', 'ghost', 1)`);
      const results = await verifyStore(store, {});
      expect(results.map((x) => x.instance)).toEqual(['ghost', INSTANCE]);
      expect(results.every((x) => !x.report.ok)).toBe(true);
      const own = results[1].report.problems;
      expect(own).toEqual([expect.objectContaining({ kind: 'index-mismatch', seq: 41, message: expect.stringMatching(/3 term\(s\) of instance "ix-1" point at records that do not exist \(seq 41, 999\)/) })]);
      expect(results[0].report.problems).toEqual([expect.objectContaining({ kind: 'index-mismatch', message: expect.stringMatching(/1 term\(s\) of instance "ghost" point at records that do not exist/) })]);
      // Verifying one instance still sees its orphans.
      const one = await verifyStore(store, { instance: INSTANCE });
      expect(one[0].report.ok).toBe(false);
    });

    it('a deleted record leaves its terms behind: reported beside the broken chain', async () => {
      const { store, sql } = await kit().fresh();
      await sql(`DELETE FROM records WHERE seq = 25`);
      const results = await verifyStore(store, {});
      const kinds = results[0].report.problems.map((p) => p.kind);
      expect(kinds).toEqual(expect.arrayContaining(['seq-gap', 'broken-link', 'index-mismatch']));
    });

    it('a wiped index is reported in bounded detail', async () => {
      const { store, sql } = await kit().fresh();
      await sql(`DELETE FROM terms`);
      await sql(`UPDATE records SET identity = 'x'`);
      const results = await verifyStore(store, {});
      expect(results[0].index).toMatchObject({ records: 40, terms: 0, mismatched: 40 });
      const problems = results[0].report.problems;
      expect(problems.length).toBeLessThanOrEqual(51);
      expect(problems.every((p) => p.kind === 'index-mismatch')).toBe(true);
    });

    it('search results are re-checked; a limit still returns that many genuine records', async () => {
      const { store, sql } = await kit().fresh();
      // Forge the newest records (even: end records) into public.customers.
      for (const seq of [40, 38, 36]) await sql(`INSERT INTO terms (kind, value, instance, seq) VALUES ('table', 'public.customers', '${INSTANCE}', ${seq})`);
      expect(await seqs(store, { table: 'public.customers', descending: true, limit: 3 })).toEqual([37, 33, 29]);
      expect(await seqs(store, { table: 'public.customers', instance: INSTANCE, descending: true, limit: 2 })).toEqual([37, 33]);
      expect(await seqs(store, { table: 'customers', limit: 2 })).toEqual([1, 5]);
      expect(await seqs(store, { table: 'nosuch' })).toEqual([]);
      expect(await seqs(store, { table: 'CARDS', descending: true, limit: 2 })).toEqual([39, 35]);
      await sql(`UPDATE records SET identity = 'alice' WHERE seq IN (40, 38)`);
      expect([identityOf(40), identityOf(39), identityOf(38), identityOf(37), identityOf(36)]).toEqual(['bob', 'alice', 'carol', 'bob', 'alice']);
      expect(await seqs(store, { identity: 'alice', descending: true, limit: 2 })).toEqual([39, 36]);
    });
  });
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-audit-index-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

let sqliteNo = 0;
const openSqlite: AuditStore[] = [];
afterAll(async () => {
  for (const s of openSqlite) await s.close();
});

tamperTests('sqlite', () => ({
  async fresh() {
    const file = path.join(dir, `s${++sqliteNo}.db`);
    const db = new SqliteAuditDb(file, { durability: 'os' });
    db.append(makeRecords());
    db.close();
    const store = await openSqliteStore(file, { readOnly: true });
    openSqlite.push(store);
    return {
      store,
      async sql(text: string) {
        const w = new Database(file);
        try {
          w.exec(text);
        } finally {
          w.close();
        }
      },
    };
  },
}));

describe('postgres', () => {
  let cluster: PgCluster;
  let url: string;
  const stores: AuditStore[] = [];
  let schemaNo = 0;

  beforeAll(async () => {
    cluster = await startPgCluster();
    url = cluster.url('postgres');
  }, 120_000);

  afterAll(async () => {
    for (const s of stores) await s.close();
    await cluster?.stop();
  });

  it('verifications running at once do not starve each other of connections', async () => {
    const w = await openPostgresStore(url, { schema: 'audit_ix_busy' });
    await w.append(makeRecords(2500)); // the chain is read in several pages while the index is read
    await w.close();
    const store = await openPostgresStore(url, { schema: 'audit_ix_busy', readOnly: true });
    stores.push(store);
    const runs = await Promise.all([1, 2, 3].map(() => verifyStore(store, {})));
    for (const r of runs) expect(r[0].report).toMatchObject({ ok: true, records: 2500 });
  }, 30_000);

  tamperTests('postgres', () => ({
    async fresh() {
      const schema = `audit_ix${++schemaNo}`;
      const w = await openPostgresStore(url, { schema });
      await w.append(makeRecords());
      await w.close();
      const store = await openPostgresStore(url, { schema, readOnly: true });
      stores.push(store);
      return {
        store,
        async sql(text: string) {
          await cluster.query(`SET search_path = ${schema}; ${text}`);
        },
      };
    },
  }));
});

describe('GET /api/v1/audit/verify', () => {
  it('reports an edited index with ok: false and the index summary', async () => {
    const file = path.join(dir, 'api.db');
    const db = new SqliteAuditDb(file, { durability: 'os' });
    db.append(makeRecords());
    db.close();
    const w = new Database(file);
    w.prepare(`DELETE FROM terms WHERE kind = 'action' AND value = 'deny' AND seq = 19`).run();
    w.close();
    const store = await openSqliteStore(file, { readOnly: true });
    openSqlite.push(store);
    const app = Fastify();
    registerAuditRoutes(app, { store, instance: INSTANCE } as unknown as AuditLog, async () => undefined);
    const res = await app.inject({ method: 'GET', url: '/audit/verify' });
    await app.close();
    const body = res.json() as { ok: boolean; instances: { ok: boolean; index: unknown; problems: { kind: string; seq: number; message: string }[] }[] };
    expect(body.ok).toBe(false);
    expect(body.instances[0].ok).toBe(false);
    expect(body.instances[0].index).toEqual({ records: 40, terms: 79, mismatched: 1, orphanTerms: 0 });
    expect(body.instances[0].problems).toEqual([expect.objectContaining({ kind: 'index-mismatch', seq: 19, message: expect.stringMatching(/action "deny" missing/) })]);
  });
});

describe('warden audit verify (CLI)', () => {
  it('exits 1 on an edited index, naming the record', async () => {
    const file = path.join(dir, 'cli.db');
    const db = new SqliteAuditDb(file, { durability: 'os' });
    db.append(makeRecords());
    db.close();
    const clean = await runCli(['audit', 'verify', '--store', `sqlite:${file}`]);
    expect(clean.code, clean.out + clean.err).toBe(0);

    const w = new Database(file);
    w.prepare(`UPDATE records SET identity = 'nobody' WHERE seq = 4`).run();
    w.close();
    const r = await runCli(['audit', 'verify', '--store', `sqlite:${file}`]);
    expect(r.code, r.out + r.err).toBe(1);
    expect(r.out).toMatch(/index-mismatch at seq 4 .*identity column "nobody" but its data says "bob"/);
    expect(r.out).toMatch(/FAILED verification/);
    const j = await runCli(['audit', 'verify', '--store', `sqlite:${file}`, '--json']);
    expect(j.code).toBe(1);
    const parsed = JSON.parse(j.out) as { ok: boolean; instances: { report: { problems: { kind: string; seq: number }[] } }[] };
    expect(parsed.ok).toBe(false);
    expect(parsed.instances[0].report.problems).toEqual([expect.objectContaining({ kind: 'index-mismatch', seq: 4 })]);
  }, 120_000);
});
