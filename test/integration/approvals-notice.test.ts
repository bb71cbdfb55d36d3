/**
 * A statement held for approval tells its client at once, with a NoticeResponse sent before
 * the decision: the request id, the rule, who approves it and the exact command. Checked with
 * psql (which prints the notice on stderr as it arrives, while the statement still waits),
 * node-postgres' 'notice' event (simple and extended protocol), and postgres.js pipelining a
 * large streamed result in front of the held statement (the notice must not land inside it).
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rawLogin, queryMessage } from '../helpers/raw-session.js';
import { parseErrorFields, type Msg } from '../helpers/raw-wire.js';
import { BIN } from '../helpers/warden-process.js';
import { run } from '../helpers/psql.js';
import { openStateStore } from '../../src/store/open.js';
import { issueToken } from '../../src/governance/tokens.js';
import { baseYaml, direct, PASSWORDS, startCluster, startEnv, type TestEnv } from '../helpers/warden-env.js';

const DANA = 'dana-pw-notice';
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-approval-notice-'));
let env: TestEnv;

interface Notice {
  severity?: string;
  code?: string;
  message?: string;
  detail?: string;
  hint?: string;
}

const yaml = (pgPort: number): string =>
  baseYaml(
    pgPort,
    `  - { name: dana, kind: human, groups: [dba], password: ${DANA} }
admin: { host: 127.0.0.1, port: 0 }
state: { store: "sqlite:${path.join(dir, 'state.db')}" }
approvals: { mode: hold, timeout: 20s }
rules:
  - name: billing-writes-need-approval
    match: { statement: [write], tables: ["billing.*"] }
    action: approve
    reason: Billing changes need a DBA
    approvers: { groups: [dba], count: 1 }
`,
  );

beforeAll(async () => {
  const cluster = await startCluster();
  for (const s of [
    'CREATE SCHEMA billing',
    'CREATE TABLE billing.invoices (id int PRIMARY KEY, status text)',
    "INSERT INTO billing.invoices SELECT g, 'open' FROM generate_series(1, 20) g",
    'GRANT ALL ON SCHEMA billing TO warden_svc',
    'GRANT ALL ON ALL TABLES IN SCHEMA billing TO warden_svc',
  ])
    await direct(cluster, s);
  env = await startEnv({ cluster, yaml });
}, 60_000);

afterAll(async () => {
  const cluster = env?.cluster;
  await env?.stop();
  await cluster?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

const adminUrl = (): string => `http://127.0.0.1:${env.warden.admin!.port}`;

async function approve(id: string): Promise<void> {
  const res = await fetch(`${adminUrl()}/api/v1/approvals/${id}/approve`, {
    method: 'POST',
    headers: { authorization: `Basic ${Buffer.from(`dana:${DANA}`).toString('base64')}`, 'content-type': 'application/json' },
    body: JSON.stringify({ reason: 'notice test' }),
  });
  expect(res.status).toBe(200);
}

async function pendingCount(): Promise<number> {
  const res = await fetch(`${adminUrl()}/api/v1/approvals?status=pending`, { headers: { authorization: `Basic ${Buffer.from(`dana:${DANA}`).toString('base64')}` } });
  return ((await res.json()) as { requests: unknown[] }).requests.length;
}

/** What every notice must say: the request, the rule and its reason, who approves, the command and the API call. */
function expectNoticeText(text: string, id: string): void {
  expect(text).toContain(`statement held for approval: request ${id} for rule "billing-writes-need-approval" (Billing changes need a DBA)`);
  expect(text).toContain('1 of group dba (dana)');
  expect(text).toContain(`warden approvals approve ${id} --as dana --reason "..." --admin-url ${adminUrl()} (API: POST ${adminUrl()}/api/v1/approvals/${id}/approve`);
}

const until = async (cond: () => boolean, ms = 10_000): Promise<void> => {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 20));
  }
};

describe('a held statement sends a notice at once', () => {
  it('psql prints it on stderr while the statement waits; the id it names approves it', async () => {
    const child = spawn('psql', ['-X', '-h', '127.0.0.1', '-p', String(env.warden.port), '-U', 'alice', '-d', 'app', '-c', "UPDATE billing.invoices SET status = 'paid' WHERE id = 1"], {
      env: { ...process.env, PGPASSWORD: PASSWORDS.alice, PGCONNECT_TIMEOUT: '10' },
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | null>((r) => child.on('close', r));
    try {
      await until(() => /NOTICE: .*request (apr_\S+)/.test(err));
      const id = /request (apr_[A-Za-z0-9_-]+)/.exec(err)![1]!;
      // Still waiting: nothing ran, psql has printed no result.
      expect(out).toBe('');
      expect((await direct(env.cluster, 'SELECT status FROM billing.invoices WHERE id = 1')).rows[0].status).toBe('open');
      expect(err).toMatch(/^NOTICE: {2}statement held for approval/m);
      expect(err).toMatch(/^DETAIL: {2}Approvers needed: 1 of group dba \(dana\)\. The statement waits until it is approved or denied, or expires in 20s/m);
      expect(err).toMatch(/^HINT: {2}An approver runs: warden approvals approve apr_\S+ --as dana --reason "\.\.\."/m);
      expectNoticeText(err, id);
      // The hint's command, run as printed (no config file: only the approver's password).
      const command = /^HINT: {2}An approver runs: warden (approvals approve \S+ --as dana --reason "\.\.\." --admin-url \S+)/m.exec(err)![1]!;
      // (Asynchronously: this Warden runs in the test's own process.)
      const cli = await run('sh', ['-c', `cd ${dir} && node ${BIN} ${command}`], { ...process.env, WARDEN_PASSWORD: DANA }, undefined, 30_000);
      expect(cli.code, cli.err).toBe(0);
      expect(cli.out).toMatch(/approved/);
      expect(await exited).toBe(0);
      expect(out).toContain('UPDATE 1');
    } finally {
      child.kill('SIGKILL');
    }
  });

  for (const protocol of ['simple', 'extended'] as const) {
    it(`node-postgres gets the 'notice' event before the decision (${protocol} protocol)`, async () => {
      const c = await env.connect('alice');
      const notices: Notice[] = [];
      c.on('notice', (n) => notices.push(n));
      try {
        await c.query('BEGIN');
        const held =
          protocol === 'simple'
            ? c.query("UPDATE billing.invoices SET status = 'held' WHERE id = 2")
            : c.query({ text: 'UPDATE billing.invoices SET status = $1 WHERE id = $2', values: ['held', 2] });
        let done = false;
        void held.then(() => (done = true));
        await until(() => notices.length > 0);
        expect(done).toBe(false);
        const n = notices[0]!;
        expect(n.severity).toBe('NOTICE');
        expect(n.code).toBe('00000');
        const id = /request (apr_\S+) for/.exec(n.message ?? '')![1]!;
        expectNoticeText(`${n.message}\n${n.detail}\n${n.hint}`, id);
        await approve(id);
        expect((await held).rowCount).toBe(1);
        await c.query('COMMIT');
        expect(notices).toHaveLength(1);
      } finally {
        await c.end();
      }
    });
  }

  it('a notice due while a large result streams to the client arrives whole, after it (postgres.js pipelining)', async () => {
    const sql = postgres({ host: '127.0.0.1', port: env.warden.port, user: 'alice', password: PASSWORDS.alice, database: 'app', max: 1, onnotice: (n) => notices.push(n) });
    const notices: postgres.Notice[] = [];
    try {
      // postgres.js sends a query when it is awaited or executed: both now, pipelined.
      const big = sql.unsafe("SELECT repeat('x', 24 * 1024 * 1024) AS big").execute();
      const held = sql.unsafe("UPDATE billing.invoices SET status = 'streamed' WHERE id = 3").execute();
      await until(() => notices.length > 0, 15_000);
      const id = /request (apr_\S+) for/.exec(String(notices[0]!.message))![1]!;
      await approve(id);
      const [rows, upd] = await Promise.all([big, held]);
      expect((rows[0] as unknown as { big: string }).big.length).toBe(24 * 1024 * 1024);
      expect(upd.count).toBe(1);
      expect(await pendingCount()).toBe(0);
    } finally {
      await sql.end();
    }
  });

  it('a notice due in the middle of a streamed DataRow waits for its end (raw client that stops reading)', async () => {
    const { wire } = await rawLogin(env.warden.port, 'alice', PASSWORDS.alice);
    try {
      // The client reads nothing: Warden's socket to it fills up and the upstream is paused
      // part way through the 8 MB DataRow, when the UPDATE behind it is held and its notice due.
      wire.sock.pause();
      const size = 8 * 1024 * 1024;
      wire.write(queryMessage(`SELECT repeat('y', ${size}) AS big`));
      await new Promise((r) => setTimeout(r, 1_500));
      wire.write(queryMessage("UPDATE billing.invoices SET status = 'raw' WHERE id = 5"));
      const t0 = Date.now();
      while ((await pendingCount()) === 0) {
        if (Date.now() - t0 > 10_000) throw new Error('no pending request');
        await new Promise((r) => setTimeout(r, 50));
      }
      await new Promise((r) => setTimeout(r, 200));
      wire.sock.resume();
      const first: Msg[] = [];
      for (;;) {
        const m = await wire.read(15_000);
        first.push(m);
        if (m.type === 'Z') break;
      }
      const notice = first.findIndex((m) => m.type === 'N');
      if (notice < 0) first.push(await wire.read(10_000));
      // Every message whole and in order: the notice after the whole row, never inside it.
      expect(first.filter((m) => m.type !== 'N').map((m) => m.type).join('')).toBe('TDCZ');
      expect(first.findIndex((m) => m.type === 'N')).toBeGreaterThan(1);
      expect(first[1]!.body.readInt32BE(2)).toBe(size);
      const n = parseErrorFields(first.find((m) => m.type === 'N')!.body);
      const id = /request (apr_\S+) for/.exec(n.M ?? '')![1]!;
      expectNoticeText(`${n.M}\n${n.D}\n${n.H}`, id);
      await approve(id);
      const rest: Msg[] = [];
      for (;;) {
        const m = await wire.read(10_000);
        rest.push(m);
        if (m.type === 'Z') break;
      }
      expect(rest.map((m) => m.type).join('')).toBe('CZ');
      expect(rest[0]!.body.toString('utf8', 0, rest[0]!.body.length - 1)).toBe('UPDATE 1');
    } finally {
      wire.destroy();
    }
  });

  it('an agent acting for dana (a token with --on-behalf-of): the request names her, she cannot approve it, and the notice does not offer her', async () => {
    const state = await openStateStore({ kind: 'sqlite', location: path.join(dir, 'state.db') });
    const agentIdentity = env.config.identities.find((i) => i.name === 'agent')!;
    const { token } = await issueToken(state, agentIdentity, { ttlMs: 600_000, onBehalfOf: 'dana' });
    await state.close();
    const c = new pg.Client({ ...env.client('agent'), password: token });
    await c.connect();
    const notices: Notice[] = [];
    c.on('notice', (n) => notices.push(n));
    try {
      const held = c.query("UPDATE billing.invoices SET status = 'agent' WHERE id = 6");
      held.catch(() => undefined);
      await until(() => notices.length > 0);
      const id = /request (apr_\S+) for/.exec(notices[0]!.message ?? '')![1]!;
      // Dana is the only dba, and the one the agent acts for: nobody can approve it.
      expect(notices[0]!.detail).toContain('1 of group dba (nobody is in it: the request cannot be approved)');
      const shown = await fetch(`${adminUrl()}/api/v1/approvals/${id}`, { headers: { authorization: `Basic ${Buffer.from(`dana:${DANA}`).toString('base64')}` } });
      expect(((await shown.json()) as { onBehalfOf?: string }).onBehalfOf).toBe('dana');
      const res = await fetch(`${adminUrl()}/api/v1/approvals/${id}/approve`, {
        method: 'POST',
        headers: { authorization: `Basic ${Buffer.from(`dana:${DANA}`).toString('base64')}`, 'content-type': 'application/json' },
        body: JSON.stringify({ reason: 'my own agent' }),
      });
      expect(res.status).toBe(403);
      expect(((await res.json()) as { error: string }).error).toMatch(/cannot decide their own request/);
    } finally {
      await c.end();
    }
  });

  it('a statement covered by a grant sends no notice (nothing waits)', async () => {
    // A grant covers the next statement: no request, no notice.
    const c = await env.connect('alice');
    const notices: Notice[] = [];
    c.on('notice', (n) => notices.push(n));
    try {
      const held = c.query("UPDATE billing.invoices SET status = 'g' WHERE id = 4");
      await until(() => notices.length > 0);
      const id = /request (apr_\S+) for/.exec(notices[0]!.message ?? '')![1]!;
      const res = await fetch(`${adminUrl()}/api/v1/approvals/${id}/approve`, {
        method: 'POST',
        headers: { authorization: `Basic ${Buffer.from(`dana:${DANA}`).toString('base64')}`, 'content-type': 'application/json' },
        body: JSON.stringify({ reason: 'grant', grant_minutes: 5 }),
      });
      expect(res.status).toBe(200);
      await held;
      expect((await c.query("UPDATE billing.invoices SET status = 'g2' WHERE id = 4")).rowCount).toBe(1);
      expect(notices).toHaveLength(1);
    } finally {
      await c.end();
    }
  });
});
