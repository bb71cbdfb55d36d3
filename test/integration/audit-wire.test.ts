/**
 * The audit log on the wire: every session, statement (write-ahead), refusal,
 * DDL change and failed login through a real Warden and PostgreSQL becomes a
 * hash-chained record that verifies; an unwritable store refuses statements.
 */
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { baseYaml, PASSWORDS, startEnv, type TestEnv } from '../helpers/warden-env.js';
import { openSqliteStore } from '../../src/audit/store-sqlite.js';
import { verifyChainAsync, type AuditRecord } from '../../src/audit/chain.js';
import type { AuditStore } from '../../src/audit/store.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-audit-wire-'));
const dbFile = path.join(dir, 'audit.db');
const keyFile = path.join(dir, 'signing.pem');
const { privateKey, publicKey } = crypto.generateKeyPairSync('ed25519');
fs.writeFileSync(keyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }));

const RULES = `
sensitive:
  columns:
    public.people.ssn: ssn
rules:
  - name: no-drop
    match: { statement: [drop] }
    action: deny
    reason: Destructive DDL is not run through Warden
admin: { host: 127.0.0.1, port: 0, auditors: [analysts] }
audit:
  store: sqlite:${dbFile}
  instance: wire-test
  signing_key: ${keyFile}
  checkpoint_every: 5
`;

async function records(store: AuditStore, q: Parameters<AuditStore['query']>[0] = {}): Promise<AuditRecord[]> {
  const out: AuditRecord[] = [];
  for await (const r of store.query(q)) out.push(r);
  return out;
}

async function waitFor<T>(fn: () => Promise<T | undefined>, what: string, ms = 5_000): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('audit on the wire', () => {
  let env: TestEnv;
  let reader: AuditStore;

  beforeAll(async () => {
    env = await startEnv({ yaml: (p) => baseYaml(p, RULES) });
    reader = await openSqliteStore(dbFile, { readOnly: true });
  });
  afterAll(async () => {
    await reader?.close();
    await env?.stop();
    if (!process.env.KEEP_AUDIT) fs.rmSync(dir, { recursive: true, force: true });
    else console.log("AUDITDIR", dir);
  });

  it('records the session, each statement before and after it runs, and refusals', async () => {
    const c = await env.connect('alice');
    const pid = (await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0].pid;
    expect(pid).toBeGreaterThan(0);
    await c.query('CREATE TABLE people (id int primary key, name text, ssn text)');
    await c.query("INSERT INTO people VALUES (1, 'Ann', '123-45-6789'), (2, 'Bo', '987-65-4321')");
    const r = await c.query('SELECT id, name FROM people WHERE id > $1', [0]);
    expect(r.rows).toHaveLength(2);
    await c.query('SELECT ssn FROM people WHERE ssn = $1', ['123-45-6789']);
    await expect(c.query('DROP TABLE people')).rejects.toThrow(/Destructive DDL/);
    await expect(c.query('SELECT * FROM no_such_table')).rejects.toThrow(/does not exist/);
    await c.end();

    const ends = await waitFor(async () => {
      const e = await records(reader, { types: ['session.end'], identity: 'alice' });
      return e.length > 0 ? e : undefined;
    }, 'session.end');
    const session = ends[0].data.session as string;
    const all = await records(reader, { session });
    const types = all.map((x) => x.type);
    expect(types[0]).toBe('session.start');
    expect(types.at(-1)).toBe('session.end');
    expect(all[0].data).toMatchObject({ identity: 'alice', kind: 'human', database: 'app', tls: false, client_address: '127.0.0.1' });

    const begins = all.filter((x) => x.type === 'statement.begin');
    const select = begins.find((x) => String(x.data.sql).startsWith('SELECT id, name FROM people'));
    expect(select?.data).toMatchObject({ protocol: 'extended', params: ['0'], decision: { action: 'allow' } });
    // Unqualified: recorded under every schema of the search_path it could be in.
    expect(select?.data.tables).toContain('public.people');
    // Its completion refers to it and carries the row count.
    const end = all.find((x) => x.type === 'statement.end' && x.data.begin_seq === select!.seq);
    expect(end?.data).toMatchObject({ rows: 2, tags: ['SELECT 2'] });
    expect(end!.seq).toBeGreaterThan(select!.seq);
    const insertEnd = all.find((x) => x.type === 'statement.end' && (x.data.tags as string[] | undefined)?.[0] === 'INSERT 0 2');
    expect(insertEnd?.data.affected).toBe(2);

    // A statement touching a sensitive column: constants and parameters are not in the audit.
    const sens = begins.find((x) => String(x.data.sql).startsWith('SELECT ssn'));
    expect(sens?.data.params).toEqual(['<masked>']);
    expect(JSON.stringify(all)).not.toContain('123-45-6789');
    expect(JSON.stringify(all)).not.toContain('987-65-4321');

    const refused = all.find((x) => x.type === 'statement.refused');
    expect(refused?.data).toMatchObject({ sql: 'DROP TABLE people', sqlstate: '42501', decision: { action: 'deny', rule: 'no-drop' } });
    const failed = all.find((x) => x.type === 'statement.end' && x.data.sqlstate === '42P01');
    expect(failed?.data.error).toMatch(/no_such_table/);
  });

  it('records DDL with the table definition before and after', async () => {
    const c = await env.connect('bob');
    await c.query('CREATE TABLE gadgets (id int)');
    await c.query("/* ticket='OPS-7' */ ALTER TABLE gadgets ADD COLUMN label text NOT NULL DEFAULT 'x'");
    await c.query('BEGIN');
    await c.query('ALTER TABLE gadgets ALTER COLUMN id TYPE bigint');
    await c.query('COMMIT');
    await c.end();
    const changes = await waitFor(async () => {
      const e = await records(reader, { types: ['schema.change'], table: 'public.gadgets' });
      return e.length >= 3 ? e : undefined;
    }, 'schema.change records');
    const created = changes[0].data.objects as Record<string, { before: unknown; after: unknown; changes: string[] }>;
    expect(created['public.gadgets'].before).toBeNull();
    expect(created['public.gadgets'].after).not.toBeNull();
    const added = changes[1].data.objects as Record<string, { changes: string[] }>;
    expect(added['public.gadgets'].changes.join('\n')).toMatch(/label/);
    const begin = (await records(reader, { instance: 'wire-test', fromSeq: changes[1].data.statement_seq as number, toSeq: changes[1].data.statement_seq as number }))[0];
    expect(begin.data.intent).toMatchObject({ ticket: 'OPS-7' });
    // The change made inside a transaction is read after COMMIT.
    const typed = changes[2].data.objects as Record<string, { changes: string[] }>;
    expect(typed['public.gadgets'].changes.join('\n')).toMatch(/bigint/);
  });

  it('records failed logins without the password', async () => {
    const bad = new pg.Client({ ...env.client('alice'), password: 'wrong-password-xyz' });
    await expect(bad.connect()).rejects.toThrow(/password authentication failed/);
    const ghost = new pg.Client({ ...env.client('alice'), user: 'nobody', password: 'nobody-pw' });
    await expect(ghost.connect()).rejects.toThrow(/password authentication failed/);
    const fails = await waitFor(async () => {
      const e = await records(reader, { types: ['login.failed'] });
      return e.length >= 2 ? e : undefined;
    }, 'login.failed');
    expect(fails.map((f) => f.data.identity).sort()).toEqual(['alice', 'nobody']);
    expect(JSON.stringify(fails)).not.toContain('wrong-password-xyz');
  });

  it('the chain verifies, with signed checkpoints', async () => {
    await env.warden.audit!.checkpoint();
    const cps = await reader.checkpoints('wire-test');
    expect(cps.length).toBeGreaterThan(0);
    const report = await verifyChainAsync(reader.chain('wire-test'), { checkpoints: cps, publicKey });
    expect(report.problems).toEqual([]);
    expect(report.records).toBeGreaterThan(10);
    const first = (await records(reader, { instance: 'wire-test', limit: 2 })).map((r) => r.type);
    expect(first).toEqual(['warden.start', 'config.loaded']);
  });

  it('serves the audit log to auditors on the admin API, authenticated', async () => {
    const base = `http://127.0.0.1:${env.warden.admin!.port}/api/v1`;
    const basic = (user: string, pw: string) => ({ authorization: `Basic ${Buffer.from(`${user}:${pw}`).toString('base64')}` });
    const anon = await fetch(`${base}/audit/records`);
    expect(anon.status).toBe(401);
    expect(anon.headers.get('www-authenticate')).toMatch(/^Basic/);
    const wrong = await fetch(`${base}/audit/records`, { headers: basic('alice', 'not-her-password') });
    expect(wrong.status).toBe(401);
    const notAuditor = await fetch(`${base}/audit/records`, { headers: basic('bob', PASSWORDS.bob) });
    expect(notAuditor.status).toBe(403);
    expect(((await notAuditor.json()) as { error: string }).error).toMatch(/admin\.auditors/);

    const res = await fetch(`${base}/audit/records?identity=bob&type=statement.begin&table=public.gadgets&order=asc`, { headers: basic('alice', PASSWORDS.alice) });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { records: { type: string; data: { identity: string; sql: string } }[] };
    expect(body.records.length).toBeGreaterThanOrEqual(3);
    expect(body.records[0].data.sql).toBe('CREATE TABLE gadgets (id int)');
    for (const r of body.records) expect(r).toMatchObject({ type: 'statement.begin', data: { identity: 'bob' } });
    const bad = await fetch(`${base}/audit/records?limit=0`, { headers: basic('alice', PASSWORDS.alice) });
    expect(bad.status).toBe(400);
    const verify = (await (await fetch(`${base}/audit/verify`, { headers: basic('alice', PASSWORDS.alice) })).json()) as { ok: boolean };
    expect(verify.ok).toBe(true);
    const cps = (await (await fetch(`${base}/audit/checkpoints`, { headers: basic('alice', PASSWORDS.alice) })).json()) as { checkpoints: unknown[] };
    expect(cps.checkpoints.length).toBeGreaterThan(0);
    // The failed API login is an audit event too, without the password.
    const fails = await waitFor(async () => {
      const e = await records(reader, { types: ['login.failed'] });
      const api = e.filter((x) => x.data.channel === 'admin-api');
      return api.length > 0 ? api : undefined;
    }, 'admin login.failed');
    expect(fails[0].data.identity).toBe('alice');
    expect(JSON.stringify(fails)).not.toContain('not-her-password');
    const metrics = await (await fetch(`http://127.0.0.1:${env.warden.admin!.port}/metrics`)).text();
    expect(metrics).toMatch(/^warden_audit_healthy 1$/m);
    expect(Number(/^warden_audit_records_written_total (\d+)$/m.exec(metrics)?.[1])).toBeGreaterThan(10);
  });

  it('refuses statements with 58030 while the store cannot be written, and recovers', async () => {
    const c = await env.connect('alice');
    await c.query('SELECT 1');
    // The disk refuses the audit journal's writes: a file-size limit below the journal's size makes
    // every write of this process fail with EFBIG (as a full disk fails with ENOSPC). Warden runs
    // in this process; sockets are not files, so the session goes on.
    const limit = (soft: string) => execFileSync('prlimit', ['--pid', String(process.pid), `--fsize=${soft}:unlimited`]);
    limit('1');
    let err: unknown;
    try {
      err = await c.query('SELECT 2 AS blocked_while_down').catch((e: pg.DatabaseError) => e);
    } finally {
      limit('unlimited');
    }
    expect(err).toBeInstanceOf(Error);
    expect((err as pg.DatabaseError).code).toBe('58030');
    expect((err as Error).message).toMatch(/audit log unavailable.*not run because audit.on_failure is block/);
    const ok = await c.query('SELECT 3 AS back');
    expect(ok.rows[0].back).toBe(3);
    await c.end();
    // The refused attempt is recorded once the store is back, with the reason the client got.
    const refused = await waitFor(async () => {
      const r = (await records(reader, { types: ['statement.refused'] })).filter((x) => String(x.data.sql).includes('blocked_while_down'));
      return r.length > 0 ? r : undefined;
    }, 'statement.refused of the statement refused while the store was down');
    expect(refused).toHaveLength(1);
    expect(refused[0].data.sqlstate).toBe('58030');
    expect(String(refused[0].data.error)).toMatch(/audit log unavailable/);
    // It never ran: no statement.begin for it.
    const begins = (await records(reader, { types: ['statement.begin'] })).filter((x) => String(x.data.sql).includes('blocked_while_down'));
    expect(begins).toEqual([]);
    const report = await verifyChainAsync(reader.chain('wire-test'));
    expect(report.problems).toEqual([]);
  }, 30_000);
});
