/**
 * Error recovery in extended-protocol batches, exactly as PostgreSQL does it,
 * whatever verdicts are asynchronous: after an error, messages up to Sync are
 * discarded, one ReadyForQuery follows, and the session lives on. Every batch
 * is also sent straight to PostgreSQL: Warden's answer must have the same
 * shape (message types, error codes, ReadyForQuery status).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { baseYaml, direct, PASSWORDS, startCluster, SVC_PASSWORD } from '../helpers/warden-env.js';
import type { PgCluster } from '../../src/embedded/pg-cluster.js';
import { parseConfig } from '../../src/config/load.js';
import { startWarden, type Warden } from '../../src/app.js';
import { silentLogger } from '../../src/log/logger.js';
import { Wire, type Msg } from '../helpers/raw-wire.js';
import { makeTestCerts, type TestCerts } from '../helpers/certs.js';
import { B, D, E, P, S, errorsOf, login, readyN, rowsOf, shapeOf, simpleRows, writeSplit } from '../helpers/raw-batch.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-batch-errors-'));
const keyFile = path.join(dir, 'signing.pem');
fs.writeFileSync(keyFile, crypto.generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }));

type Mode = 'plain' | 'audit' | 'audit+mask' | 'audit+approval' | 'audit+tls';

function yaml(pgPort: number, mode: Mode): string {
  const audit = mode === 'plain' ? '' : `audit:\n  store: sqlite:${path.join(dir, `audit-${mode}.db`)}\n  instance: batch-test\n  signing_key: ${keyFile}\n`;
  const mask =
    mode === 'audit+mask'
      ? `sensitive:\n  columns:\n    public.people.ssn: ssn\n  key: batch-test-key-0123456789abcdef\nrules:\n  - name: mask-everyone\n    match: {}\n    action: mask\n`
      : '';
  const approval =
    mode === 'audit+approval'
      ? `state: { store: "sqlite:${path.join(dir, 'state.db')}" }\napprovals:\n  mode: reject\nrules:\n  - name: vault-needs-approval\n    match: { statement: [write], tables: ["public.vault"] }\n    action: approve\n    approvers: { groups: [dba], count: 1 }\n`
      : '';
  const yaml = baseYaml(pgPort, audit + mask + approval);
  if (mode !== 'audit+tls') return yaml;
  return yaml.replace(
    'listen: { host: 127.0.0.1, port: 0 }',
    `listen: { host: 127.0.0.1, port: 0, tls: { cert: ${certs.serverCert}, key: ${certs.serverKey}, require: true } }`,
  );
}

let cluster: PgCluster;
let certs: TestCerts;
const wardens = new Map<Mode, Warden>();

beforeAll(async () => {
  cluster = await startCluster();
  for (const s of [
    'CREATE TABLE t (id int PRIMARY KEY, v text)',
    'CREATE TABLE people (id int PRIMARY KEY, name text, ssn text)',
    "INSERT INTO people VALUES (1, 'Ann', '123-45-6789'), (2, 'Bo', '987-65-4321')",
    'CREATE TABLE vault (id int, v text)',
    'ALTER TABLE t OWNER TO warden_svc',
    'ALTER TABLE people OWNER TO warden_svc',
    'ALTER TABLE vault OWNER TO warden_svc',
  ])
    await direct(cluster, s);
  certs = await makeTestCerts();
  for (const mode of ['plain', 'audit', 'audit+mask', 'audit+approval', 'audit+tls'] as Mode[]) {
    const config = parseConfig(yaml(cluster.port, mode), path.join(dir, `${mode}.yaml`), {});
    wardens.set(mode, await startWarden({ config, log: silentLogger() }));
  }
}, 60_000);

afterAll(async () => {
  for (const w of Wire.opened) w.destroy();
  for (const w of wardens.values()) await w.close();
  await cluster?.stop();
  await certs?.cleanup();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** Where the failing statement of a batch fails; `refused`: Warden refuses it (an approval rule, reject mode). */
type Bad = 'parse' | 'bind' | 'execute' | 'refused' | null;

/**
 * The statements of one batch in a driver's shape: INSERTs, with a SELECT of
 * a sensitive column every 5th; statement `failAt` fails at its Parse, Bind or
 * Execute. `base` keeps ids unique across runs.
 */
function batch(shape: 'jdbc' | 'pgx' | 'psycopg', n: number, failAt: number, bad: Bad, base: number): Buffer {
  const parts: Buffer[] = [];
  const ins = 'INSERT INTO t (id, v) VALUES ($1, $2)';
  const sel = 'SELECT name, ssn FROM people WHERE id = $1 AND $2::text IS NULL';
  if (shape === 'pgx') {
    // pgx prepares its statements (Parse, Describe S, Sync), then sends the batch.
    parts.push(P('pgx_ins', ins, [23, 25]), D('S', 'pgx_ins'), S());
  }
  for (let i = 0; i < n; i++) {
    const id = base + i;
    const failing = i === failAt ? bad : null;
    const read = i % 5 === 1;
    let sql = read ? sel : ins;
    if (failing === 'parse') sql = 'INSERT INTO t (id, v) VALUES ($1, $2';
    if (failing === 'refused') sql = 'INSERT INTO vault (id, v) VALUES ($1, $2)';
    // A failing Bind: an int4 parameter PostgreSQL cannot read. A failing Execute: a duplicate key.
    const param = failing === 'bind' ? 'not-a-number' : failing === 'execute' ? String(base) : read ? '1' : String(id);
    const params = read ? [param, null] : [param, `v${i}`];
    const types = read ? [23, 25] : [23, 25];
    if (shape === 'jdbc') {
      parts.push(P('', sql, types), B('', '', params), D('P', ''), E('', read ? 0 : 1));
    } else if (shape === 'pgx' && !failing && !read) {
      parts.push(B('', 'pgx_ins', params), D('P', ''), E('', 0));
    } else {
      parts.push(P('', sql, shape === 'pgx' ? types : []), B('', '', params), D('P', ''), E('', 0));
    }
  }
  parts.push(S());
  return Buffer.concat(parts);
}

async function runBatch(
  port: number,
  direct: boolean,
  bytes: Buffer,
  syncs: number,
  split: number | null,
  overTls = false,
): Promise<{ msgs: Msg[]; after: (string | null)[][] }> {
  const w = direct ? await login(port, 'warden_svc', SVC_PASSWORD) : await login(port, 'alice', PASSWORDS.alice, 'app', overTls);
  try {
    if (split) await writeSplit(w, bytes, split);
    else w.write(bytes);
    const msgs = await readyN(w, syncs, 20_000);
    const after = await simpleRows(w, 'SELECT 41 + 1');
    return { msgs, after };
  } finally {
    w.destroy();
  }
}

let nextBase = 1_000;

async function check(mode: Mode, shape: 'jdbc' | 'pgx' | 'psycopg', n: number, bad: Exclude<Bad, null>, split: number | null): Promise<void> {
  const port = wardens.get(mode)!.port;
  const base = (nextBase += 2_000);
  const syncs = shape === 'pgx' ? 2 : 1;
  const viaWarden = await runBatch(port, false, batch(shape, n, 3, bad, base), syncs, split, mode === 'audit+tls');
  await direct(cluster, `DELETE FROM t WHERE id >= ${base} AND id < ${base + n}`);
  // PostgreSQL's own answer; a refusal by Warden has the shape of a failing Bind.
  const viaPg = await runBatch(cluster.port, true, batch(shape, n, 3, bad === 'refused' ? 'bind' : bad, base), syncs, null);
  await direct(cluster, `DELETE FROM t WHERE id >= ${base} AND id < ${base + n}`);
  const expected = shapeOf(viaPg.msgs).replace('E:22P02', bad === 'refused' ? 'E:42501' : 'E:22P02');
  expect(shapeOf(viaWarden.msgs)).toBe(expected);
  expect(errorsOf(viaWarden.msgs)).toHaveLength(1);
  if (bad === 'refused') expect(errorsOf(viaWarden.msgs)[0].M).toMatch(/vault-needs-approval/);
  // The implicit transaction failed: nothing of the batch stays.
  expect(Number((await direct(cluster, `SELECT count(*) AS n FROM t WHERE id >= ${base} AND id < ${base + n}`)).rows[0].n)).toBe(0);
  const rows = rowsOf(viaWarden.msgs);
  for (const r of rows) {
    if (mode === 'audit+mask') expect(r[1]).not.toBe('123-45-6789');
    else expect(r[1]).toBe('123-45-6789');
  }
  expect(viaWarden.after).toEqual([['42']]);
}

describe.each(['plain', 'audit', 'audit+mask', 'audit+approval', 'audit+tls'] as Mode[])('an extended batch with a failing statement (%s)', (mode) => {
  const bads: Exclude<Bad, null>[] = mode === 'audit+approval' ? ['parse', 'bind', 'execute', 'refused'] : ['parse', 'bind', 'execute'];
  for (const shape of ['jdbc', 'pgx', 'psycopg'] as const) {
    for (const bad of bads) {
      for (const n of [10, 1000]) {
        it(`${shape}: ${n} statements, the 4th fails at its ${bad}`, () => check(mode, shape, n, bad, null));
      }
      it(`${shape}: 10 statements, the 4th fails at its ${bad}, sent a byte at a time`, () => check(mode, shape, 10, bad, 1));
      it(`${shape}: 10 statements, the 4th fails at its ${bad}, sent in 7-byte pieces`, () => check(mode, shape, 10, bad, 7));
    }
  }
});

describe('the audit of failing batches', () => {
  it('every statement.begin has its statement.end: run, failed, or skipped (25P02, not run)', async () => {
    const { openSqliteStore } = await import('../../src/audit/store-sqlite.js');
    const store = await openSqliteStore(path.join(dir, 'audit-audit.db'), { readOnly: true });
    try {
      let begins = new Set<number>();
      const ends = new Map<number, string | undefined>();
      for (let attempt = 0; attempt < 20; attempt++) {
        begins = new Set();
        ends.clear();
        for await (const r of store.query({ types: ['statement.begin', 'statement.end'] })) {
          if (r.type === 'statement.begin') begins.add(r.seq);
          else ends.set((r.data as { begin_seq: number }).begin_seq, (r.data as { sqlstate?: string }).sqlstate);
        }
        if ([...begins].every((b) => ends.has(b))) break;
        await new Promise((res) => setTimeout(res, 250));
      }
      expect(begins.size).toBeGreaterThan(50);
      expect([...begins].filter((b) => !ends.has(b))).toEqual([]);
      const states = [...ends.values()];
      expect(states).toContain('25P02'); // skipped after the failing statement
      expect(states).toContain('23505');
      expect(states).toContain(undefined);
    } finally {
      await store.close();
    }
  });
});
