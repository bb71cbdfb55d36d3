/**
 * Reload and stop like a daemon (issue 19, part 1), against the real `warden start` process:
 *
 * - SIGHUP reloads: a new deny rule applies to a running session's next statement on the same
 *   connection (same backend pid), and Warden keeps running; an identity whose groups/kind
 *   changed has its session ended at its next statement (57P01);
 * - `POST /api/v1/reload` (and `warden reload`) as an operator; a broken file (YAML error, a
 *   missing ${VAR}) is refused with the reason, the old rules still apply, the audit has
 *   `config.reload_failed` and /readyz says 503 until a reload succeeds; a key that needs a
 *   restart is named, and its running value kept;
 * - SIGTERM drains: a running pg_sleep(2) finishes and returns its row, an idle session is
 *   ended with 57P01, new connections are refused, Warden exits 0 and `warden.stop` is the
 *   last audit record.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { baseYaml, PASSWORDS, startCluster } from '../helpers/warden-env.js';
import { runCli, startWardenProcess, type WardenProcess } from '../helpers/warden-process.js';
import { freePort } from '../../src/embedded/free-port.js';
import type { PgCluster } from '../../src/embedded/pg-cluster.js';

const OPS_PW = 'olga-ops-pw-7';
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

let cluster: PgCluster;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-reload-'));

interface AuditLine {
  type: string;
  data: Record<string, unknown>;
}

function auditRecords(file: string): AuditLine[] {
  if (!fs.existsSync(file)) return [];
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as AuditLine)
    .filter((r) => typeof r.type === 'string');
}

async function waitFor<T>(what: string, f: () => T | undefined, timeoutMs = 10_000): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = f();
    if (v !== undefined) return v;
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** The config: `rules` and `extraIdentities` vary between reloads. */
function yaml(o: { adminPort: number; audit: string; rules: string; bobKind?: string; listenPort?: string }): string {
  return baseYaml(
    cluster.port,
    `  - name: olga
    kind: human
    groups: [ops]
    password: ${OPS_PW}
admin: { host: 127.0.0.1, port: ${o.adminPort}, operators: [ops] }
audit: { store: "jsonl:${o.audit}", durability: os }
rules:
${o.rules}
`,
  )
    .replace('listen: { host: 127.0.0.1, port: 0 }', `listen: { host: 127.0.0.1, port: ${o.listenPort ?? '__PORT__'}, drain_timeout: 10s }`)
    .replace('kind: service', `kind: ${o.bobKind ?? 'service'}`);
}

const NO_DROP = '  - { name: no-drop, match: { statement: [drop] }, action: deny, reason: "no drops" }';
const NO_SECRET = '  - { name: no-secret, match: { tables: [public.secret] }, action: deny, reason: "secret is off limits" }';

async function api(adminPort: number, who: [string, string], method: string, p: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`http://127.0.0.1:${adminPort}${p}`, {
    method,
    headers: { authorization: `Basic ${Buffer.from(`${who[0]}:${who[1]}`).toString('base64')}` },
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

function client(w: WardenProcess, user: keyof typeof PASSWORDS): pg.Client {
  const c = new pg.Client({ host: '127.0.0.1', port: w.port, user, password: PASSWORDS[user], database: 'app' });
  c.on('error', () => undefined); // a FATAL from Warden (drain, a changed identity) arrives as an error event too
  return c;
}

beforeAll(async () => {
  cluster = await startCluster();
  await cluster.query('CREATE TABLE secret (id int, v text); INSERT INTO secret VALUES (1, $$x$$); GRANT ALL ON secret TO warden_svc', 'app');
}, 60_000);
afterAll(async () => {
  await cluster?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('reload (SIGHUP, admin API, warden reload)', () => {
  let w: WardenProcess;
  let adminPort: number;
  const audit = path.join(dir, 'reload-audit.jsonl');
  let template: { adminPort: number; audit: string };
  let listenPort: string;

  beforeAll(async () => {
    adminPort = await freePort();
    template = { adminPort, audit };
    w = await startWardenProcess(yaml({ ...template, rules: NO_DROP }));
    listenPort = String(w.port);
  }, 30_000);
  afterAll(async () => {
    await w?.stop();
  });

  const rewrite = (text: string): void => fs.writeFileSync(w.config, text);

  it('SIGHUP: a new deny rule applies to the running session on the same connection, and Warden keeps running', async () => {
    const alice = client(w, 'alice');
    const bob = client(w, 'bob');
    await alice.connect();
    await bob.connect();
    try {
      const pid = (await alice.query('SELECT pg_backend_pid() AS pid')).rows[0].pid as number;
      expect((await alice.query('SELECT v FROM secret')).rows).toEqual([{ v: 'x' }]);
      expect((await bob.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);

      rewrite(yaml({ ...template, listenPort, rules: `${NO_DROP}\n${NO_SECRET}`, bobKind: 'agent' }));
      w.child.kill('SIGHUP');
      const rec = await waitFor('config.reloaded', () => auditRecords(audit).find((r) => r.type === 'config.reloaded'));
      expect(rec.data.trigger).toBe('SIGHUP');
      expect(rec.data.restart_needed).toEqual([]);
      expect(rec.data.previous_hash).not.toBe(rec.data.hash);

      await expect(alice.query('SELECT v FROM secret')).rejects.toMatchObject({ code: '42501', message: expect.stringContaining('no-secret') });
      // Same connection, same backend: nothing reconnected.
      expect((await alice.query('SELECT pg_backend_pid() AS pid')).rows[0].pid).toBe(pid);
      // bob's kind changed: his session ends at its next statement.
      await expect(bob.query('SELECT 1')).rejects.toMatchObject({ code: '57P01', message: expect.stringContaining('identity "bob" changed') });
      expect(w.child.exitCode).toBeNull();
      expect(w.child.signalCode).toBeNull();
    } finally {
      await alice.end().catch(() => undefined);
      await bob.end().catch(() => undefined);
    }
  });

  it('a broken file is refused with the reason, the old rules still apply, the audit and /readyz say so', async () => {
    const alice = client(w, 'alice');
    await alice.connect();
    try {
      // Not an operator.
      expect((await api(adminPort, ['alice', PASSWORDS.alice], 'POST', '/api/v1/reload')).status).toBe(403);

      rewrite(yaml({ ...template, listenPort, rules: NO_DROP }) + '\n  - { name: broken, match: {');
      const r = await api(adminPort, ['olga', OPS_PW], 'POST', '/api/v1/reload');
      expect(r.status).toBe(422);
      expect(r.body.ok).toBe(false);
      expect(String(r.body.error)).toMatch(/warden\.yaml/);
      const failed = await waitFor('config.reload_failed', () => auditRecords(audit).find((x) => x.type === 'config.reload_failed'));
      expect(failed.data).toMatchObject({ trigger: 'admin-api', identity: 'olga' });
      expect(String(failed.data.reason)).toBe(r.body.error);
      // The rules of the last good file (no-secret) still apply.
      await expect(alice.query('SELECT v FROM secret')).rejects.toMatchObject({ code: '42501' });
      const ready = await fetch(`http://127.0.0.1:${adminPort}/readyz`);
      expect(ready.status).toBe(503);
      expect(JSON.stringify(await ready.json())).toMatch(/reload/);

      // A missing environment variable: refused too, and the secret-free reason names it.
      rewrite(yaml({ ...template, listenPort, rules: NO_DROP }).replace(OPS_PW, '${H1_RELOAD_UNSET_VAR}'));
      const r2 = await api(adminPort, ['olga', OPS_PW], 'POST', '/api/v1/reload');
      expect(r2.status).toBe(422);
      expect(String(r2.body.error)).toContain('H1_RELOAD_UNSET_VAR');
      await expect(alice.query('SELECT v FROM secret')).rejects.toMatchObject({ code: '42501' });

      // A good file through `warden reload`: applied; the changed listen port needs a restart and is kept.
      rewrite(yaml({ ...template, listenPort: String(Number(listenPort) + 1), rules: NO_DROP }));
      const cli = await runCli(['reload', '--admin-url', `http://127.0.0.1:${adminPort}`, '--as', 'olga', '--json'], { WARDEN_PASSWORD: OPS_PW });
      expect(cli.code, cli.err).toBe(0);
      const res = JSON.parse(cli.out) as { ok: boolean; restartNeeded: string[] };
      expect(res).toMatchObject({ ok: true, restartNeeded: ['listen.port'] });
      expect((await alice.query('SELECT v FROM secret')).rows).toEqual([{ v: 'x' }]);
      expect((await fetch(`http://127.0.0.1:${adminPort}/readyz`)).status).toBe(200);
      const again = client(w, 'alice');
      await again.connect(); // still on the port it started with
      await again.end();
    } finally {
      await alice.end().catch(() => undefined);
    }
  });
});

describe('stop (SIGTERM drains)', () => {
  it('a running statement finishes, idle sessions end with 57P01, new connections are refused, warden.stop is recorded, exit 0', async () => {
    const audit = path.join(dir, 'stop-audit.jsonl');
    const w = await startWardenProcess(yaml({ adminPort: await freePort(), audit, rules: NO_DROP }));
    const busy = client(w, 'alice');
    const idle = client(w, 'bob');
    await busy.connect();
    await idle.connect();
    const idleError = new Promise<Error & { code?: string }>((resolve) => idle.on('error', resolve));
    const exited = new Promise<number | null>((resolve) => w.child.once('exit', (code) => resolve(code)));
    const t0 = Date.now();
    const running = busy.query('SELECT pg_sleep(2), 42 AS answer');
    await sleep(400);
    w.child.kill('SIGTERM');
    // The idle session is ended at once.
    await expect(idleError).resolves.toMatchObject({ code: '57P01' });
    // Nothing new is accepted while draining.
    await sleep(100);
    const refused = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port: w.port }, () => {
        s.destroy();
        resolve(false);
      });
      s.on('error', () => resolve(true));
    });
    expect(refused).toBe(true);
    // The running statement finishes and returns its row.
    expect((await running).rows).toEqual([{ pg_sleep: '', answer: 42 }]);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1900);
    expect(await exited).toBe(0);
    await busy.end().catch(() => undefined);
    const recs = auditRecords(audit);
    expect(recs.at(-1)?.type).toBe('warden.stop');
    expect(recs.at(-1)?.data.reason).toBe('SIGTERM');
  }, 30_000);

  it('a second SIGTERM exits at once, without waiting for the running statement', async () => {
    const w = await startWardenProcess(yaml({ adminPort: await freePort(), audit: path.join(dir, 'stop2-audit.jsonl'), rules: NO_DROP }));
    const busy = client(w, 'alice');
    await busy.connect();
    const exited = new Promise<number | null>((resolve) => w.child.once('exit', (code) => resolve(code)));
    const running = busy.query('SELECT pg_sleep(5)').then(
      () => 'finished',
      () => 'failed',
    );
    await sleep(300);
    const t0 = Date.now();
    w.child.kill('SIGTERM');
    await sleep(300);
    expect(w.child.exitCode).toBeNull(); // draining: the statement is still running
    w.child.kill('SIGTERM');
    expect(await exited).toBe(1);
    expect(Date.now() - t0).toBeLessThan(3_000);
    expect(await running).toBe('failed');
    await busy.end().catch(() => undefined);
  }, 30_000);
});
