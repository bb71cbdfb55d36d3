import crypto from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AuditRecord, ChainWriter, signCheckpoint, verifyChain } from '../../src/audit/index.js';
import type { AuditQuery, AuditStore } from '../../src/audit/store.js';
import { openPostgresStore } from '../../src/audit/store-postgres.js';
import { type PgCluster, startPgCluster } from '../../src/embedded/pg-cluster.js';

const T0 = Date.UTC(2026, 0, 1, 10, 0, 0);
const { privateKey, publicKey } = crypto.generateKeyPairSync('ed25519');

/** Records: statement.begin / statement.end alternating, 3 identities, 2 tables, deny every 4th. */
function makeRecords(instance: string, n = 12, w = new ChainWriter({ instance }), tOffset = 0): AuditRecord[] {
  const out: AuditRecord[] = [];
  for (let i = 1; i <= n; i++) {
    const identity = ['alice', 'bob', 'carol'][i % 3];
    const table = i % 2 === 0 ? 'public.customers' : 'sales.orders';
    out.push(
      w.append(
        i % 2 === 1 ? 'statement.begin' : 'statement.end',
        {
          identity,
          session: `s${i % 4}`,
          tables: [table],
          classes: [i % 4 === 0 ? 'write' : 'read'],
          kinds: [i % 4 === 0 ? 'update' : 'select'],
          decision: { action: i % 4 === 0 ? 'deny' : 'allow' },
          // jsonb would reorder these keys and normalize the numbers: the hash must still verify.
          odd: { z: 1, a: [1.5, 1e21, 0.1, 1e-7], 'é': '\u2028 😀 \\ "q" \u0001', n: 12345678901234567890, nul: 'a\u0000b' },
        },
        new Date(T0 + tOffset + i * 60_000),
      ),
    );
  }
  return out;
}

async function all<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

const seqs = async (store: AuditStore, q: AuditQuery): Promise<number[]> => (await all(store.query(q))).map((r) => r.seq);

describe('postgres audit store', () => {
  let cluster: PgCluster;
  let url: string;
  const stores: AuditStore[] = [];
  let schemaNo = 0;
  /** A store on a fresh schema. */
  const fresh = async (opts: { readOnly?: boolean; schema?: string } = {}): Promise<AuditStore> => {
    const s = await openPostgresStore(url, { schema: opts.schema ?? `audit_t${++schemaNo}`, readOnly: opts.readOnly });
    stores.push(s);
    return s;
  };

  beforeAll(async () => {
    cluster = await startPgCluster();
    url = cluster.url('postgres');
  });

  afterAll(async () => {
    for (const s of stores) await s.close();
    await cluster?.stop();
  });

  it('creates its schema and round-trips records exactly; they verify after reopening', async () => {
    const s = await openPostgresStore(url);
    stores.push(s);
    expect(s.description).toBe(`postgres://postgres@127.0.0.1:${cluster.port}/postgres`);
    expect(s.description).not.toContain(cluster.superPassword);
    const tables = await cluster.query(
      `SELECT table_name FROM information_schema.tables WHERE table_schema = 'warden_audit' ORDER BY 1`,
    );
    expect(tables.rows.map((r: { table_name: string }) => r.table_name)).toEqual(['checkpoints', 'records', 'terms']);

    const recs = makeRecords('eu-1');
    expect(await s.head('eu-1')).toBeNull();
    await s.append(recs.slice(0, 5));
    await s.append(recs.slice(5));
    await s.append([]);
    expect(await s.head('eu-1')).toEqual({ seq: 12, hash: recs[11].hash });
    await s.close();

    const r = await openPostgresStore(url, { readOnly: true });
    stores.push(r);
    const chain = await all(r.chain('eu-1'));
    expect(chain).toEqual(recs);
    expect(verifyChain(chain)).toMatchObject({ ok: true, records: 12, lastSeq: 12 });
    expect((await all(r.chain('eu-1', 10))).map((x) => x.seq)).toEqual([10, 11, 12]);
    expect(await all(r.query({}))).toEqual(recs);
    expect(await r.instances()).toEqual(['eu-1']);
    await expect(r.append(makeRecords('x', 1))).rejects.toThrow(/read-only/);

    // Reopening a writable store on an existing schema is fine; a writer resumes from the head.
    const again = await openPostgresStore(url);
    stores.push(again);
    const w = new ChainWriter({ instance: 'eu-1', last: (await again.head('eu-1'))! });
    await again.append([w.append('statement.begin', { identity: 'dave' }, new Date(T0 + 13 * 60_000))]);
    expect(verifyChain(await all(again.chain('eu-1')))).toMatchObject({ ok: true, records: 13 });
  });

  it('two stores opening the same new schema at once do not race', async () => {
    const [a, b] = await Promise.all([fresh({ schema: 'race_test' }), fresh({ schema: 'race_test' })]);
    await a.append(makeRecords('a', 2));
    await b.append(makeRecords('b', 2));
    expect(await a.instances()).toEqual(['a', 'b']);
  });

  it('keeps two instances in one store, each with its own chain', async () => {
    const s = await fresh();
    const a = makeRecords('warden-a', 5);
    const b = makeRecords('warden-b', 4, undefined, 30_000);
    await s.append(a.slice(0, 2));
    await s.append(b.slice(0, 3));
    await s.append(a.slice(2));
    await s.append(b.slice(3));
    expect(await s.instances()).toEqual(['warden-a', 'warden-b']);
    expect(await s.head('warden-b')).toEqual({ seq: 4, hash: b[3].hash });
    expect(verifyChain(await all(s.chain('warden-a')))).toMatchObject({ ok: true, records: 5 });
    expect(verifyChain(await all(s.chain('warden-b')))).toMatchObject({ ok: true, records: 4 });
    // Across instances: ts order.
    expect((await all(s.query({ limit: 4 }))).map((r) => `${r.instance}:${r.seq}`)).toEqual([
      'warden-a:1',
      'warden-b:1',
      'warden-a:2',
      'warden-b:2',
    ]);
  });

  it('rejects a duplicate seq for the same instance with a clear error, atomically', async () => {
    const s = await fresh();
    const recs = makeRecords('eu-1', 3);
    await s.append(recs);
    // A second Warden configured with the same instance name starts its own chain.
    const intruder = makeRecords('eu-1', 4);
    await expect(s.append(intruder)).rejects.toThrow(/another writer is using the same instance name's chain/);
    // Nothing of the failed batch was stored, not even seq 4.
    expect(await all(s.chain('eu-1'))).toEqual(recs);
    // The write connection is still usable.
    const w = new ChainWriter({ instance: 'eu-1', last: { seq: 3, hash: recs[2].hash } });
    await s.append([w.append('statement.end', { identity: 'alice' }, new Date(T0 + 4 * 60_000))]);
    expect(verifyChain(await all(s.chain('eu-1')))).toMatchObject({ ok: true, records: 4 });
  });

  it('filters in SQL by table, action, identity, session, time, types, seq; descending, limit and paging', async () => {
    const s = await fresh();
    await s.append(makeRecords('eu-1'));
    await s.append(makeRecords('us-1', 2, undefined, 3600_000));

    expect(await seqs(s, { instance: 'eu-1', table: 'public.customers' })).toEqual([2, 4, 6, 8, 10, 12]);
    expect(await seqs(s, { instance: 'eu-1', table: 'CUSTOMERS' })).toEqual([2, 4, 6, 8, 10, 12]);
    expect(await seqs(s, { instance: 'eu-1', table: 'other.customers' })).toEqual([]);
    expect(await seqs(s, { instance: 'eu-1', action: 'deny' })).toEqual([4, 8, 12]);
    expect(await seqs(s, { instance: 'eu-1', action: 'update' })).toEqual([4, 8, 12]);
    expect(await seqs(s, { instance: 'eu-1', action: 'Write' })).toEqual([4, 8, 12]);
    expect(await seqs(s, { instance: 'eu-1', identity: 'alice' })).toEqual([3, 6, 9, 12]);
    expect(await seqs(s, { instance: 'eu-1', session: 's1' })).toEqual([1, 5, 9]);
    expect(await seqs(s, { instance: 'eu-1', since: new Date(T0 + 10 * 60_000).toISOString() })).toEqual([10, 11, 12]);
    expect(await seqs(s, { instance: 'eu-1', until: '2026-01-01T10:03:00Z' })).toEqual([1, 2]);
    expect(await seqs(s, { instance: 'eu-1', types: ['statement.end'], fromSeq: 5, toSeq: 9 })).toEqual([6, 8]);
    expect(await seqs(s, { instance: 'eu-1', types: ['statement.'], limit: 3 })).toEqual([1, 2, 3]);
    expect(await seqs(s, { instance: 'eu-1', types: ['statement_'] })).toEqual([]);
    expect(await seqs(s, { instance: 'eu-1', types: ['other.', 'statement.end'], limit: 2 })).toEqual([2, 4]);
    expect(await seqs(s, { instance: 'eu-1', descending: true, limit: 4 })).toEqual([12, 11, 10, 9]);
    expect(await seqs(s, { instance: 'eu-1', descending: true, action: 'deny' })).toEqual([12, 8, 4]);
    expect(await seqs(s, { instance: 'eu-1', identity: 'alice', table: 'customers', action: 'deny' })).toEqual([12]);
    expect(await seqs(s, { limit: 0 })).toEqual([]);
    expect((await all(s.query({ identity: 'bob', descending: true, limit: 2 }))).map((r) => `${r.instance}:${r.seq}`)).toEqual([
      'us-1:1',
      'eu-1:10',
    ]);
    await expect(all(s.query({ since: 'yesterday-ish' }))).rejects.toThrow(/not a time/);

    // More rows than one page (1000), in both directions and across instances.
    const w = new ChainWriter({ instance: 'bulk' });
    const batch: AuditRecord[] = [];
    for (let i = 0; i < 2500; i++) batch.push(w.append('statement.begin', { identity: `u${i % 5}` }, new Date(T0 + 7200_000 + i)));
    await s.append(batch);
    expect(verifyChain(await all(s.chain('bulk')))).toMatchObject({ ok: true, records: 2500 });
    const up = await seqs(s, { instance: 'bulk', identity: 'u0' });
    expect(up).toHaveLength(500);
    expect(up.slice(0, 2)).toEqual([1, 6]);
    const down = await seqs(s, { identity: 'u4', descending: true, limit: 1200 });
    expect(down).toHaveLength(500);
    expect(down[0]).toBe(2500);
    const everything = await all(s.query({ since: new Date(T0).toISOString() }));
    expect(everything).toHaveLength(2514);
    expect(everything.map((r) => r.ts)).toEqual(everything.map((r) => r.ts).sort());
  });

  it('prunes old records (and their terms) and keeps checkpoints', async () => {
    const s = await fresh({ schema: 'prune_test' });
    const recs = makeRecords('eu-1');
    await s.append(recs);
    await s.append(makeRecords('us-1', 2));
    const cp = signCheckpoint(recs[2], privateKey, new Date(T0));
    await s.saveCheckpoint(cp);

    expect(await s.prune(new Date(T0 + 5 * 60_000).toISOString(), 'eu-1')).toBe(4);
    const kept = await all(s.chain('eu-1'));
    expect(kept.map((r) => r.seq)).toEqual([5, 6, 7, 8, 9, 10, 11, 12]);
    expect(verifyChain(kept, { startAfter: { seq: kept[0].seq - 1, hash: kept[0].prev } })).toMatchObject({ ok: true });
    expect(await all(s.chain('us-1'))).toHaveLength(2);
    const orphans = await cluster.query(
      'SELECT count(*)::int AS n FROM prune_test.terms t WHERE NOT EXISTS (SELECT 1 FROM prune_test.records r WHERE r.instance = t.instance AND r.seq = t.seq)',
    );
    expect(orphans.rows[0]).toEqual({ n: 0 });
    expect(await s.checkpoints()).toEqual([cp]);
    expect(await s.prune('2000-01-01T00:00:00Z')).toBe(0);
    expect(await s.prune(new Date(T0 + 3600_000).toISOString())).toBe(10);
    expect(await all(s.query({}))).toEqual([]);
  });

  it('stores checkpoints', async () => {
    const s = await fresh();
    const recs = makeRecords('eu-1', 6);
    await s.append(recs);
    expect(await s.checkpoints()).toEqual([]);
    const cp3 = signCheckpoint(recs[2], privateKey, new Date(T0));
    const cp6 = signCheckpoint(recs[5], privateKey, new Date(T0));
    const other = signCheckpoint(makeRecords('us-1', 1)[0], privateKey, new Date(T0));
    await s.saveCheckpoint(cp6);
    await s.saveCheckpoint(other);
    await s.saveCheckpoint(cp3);
    await s.saveCheckpoint(cp3);
    expect(await s.checkpoints('eu-1')).toEqual([cp3, cp6]);
    expect(await s.checkpoints()).toEqual([cp3, cp6, other]);
    const report = verifyChain(await all(s.chain('eu-1')), { checkpoints: await s.checkpoints('eu-1'), publicKey });
    expect(report).toMatchObject({ ok: true, records: 6 });
  });

  it('detects rows edited in the database', async () => {
    const s = await fresh({ schema: 'tamper_test' });
    await s.append(makeRecords('eu-1', 5));
    await cluster.query(`UPDATE tamper_test.records SET data = replace(data, '"bob"', '"mallory"') WHERE seq = 4`);
    await cluster.query(`UPDATE tamper_test.records SET data = 'not json' WHERE seq = 2`);
    const chain = await all(s.chain('eu-1'));
    expect(chain[1].data).toEqual({ malformed: 'not json' });
    const report = verifyChain(chain);
    expect(report.problems.filter((p) => p.kind === 'hash-mismatch').map((p) => p.seq)).toEqual([2, 4]);
    // query() skips the unreadable row.
    expect(await seqs(s, { instance: 'eu-1' })).toEqual([1, 3, 4, 5]);
  });

  it('keeps the password out of descriptions and errors', async () => {
    const bad = cluster.url('postgres', 'postgres', 'Wr0ng-S3cret!');
    const err = await openPostgresStore(bad).then(
      () => null,
      (e: unknown) => e as Error,
    );
    expect(err).toBeInstanceOf(Error);
    expect(err!.message).toMatch(/password authentication failed/);
    expect(err!.message).toContain(`postgres://postgres@127.0.0.1:${cluster.port}/postgres`);
    expect(err!.message).not.toContain('Wr0ng-S3cret!');
    expect(err!.message).not.toContain(encodeURIComponent('Wr0ng-S3cret!'));

    await expect(openPostgresStore(url, { readOnly: true, schema: 'no_such_schema' })).rejects.toThrow(/no audit records table/);
    await expect(openPostgresStore('not a url')).rejects.toThrow(/invalid URL/);
  });
});
