/**
 * The CLI as an operator uses it (issue 19, "a CLI that fits"): commands that talk to the admin
 * API need only the admin URL and their own identity's password — no config file, no other
 * secret; `config check` lists every problem at once, as text or JSON; a group nobody is in is
 * an error; `--version`.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PASSWORDS, SVC_PASSWORD, direct, startEnv, type TestEnv } from '../helpers/warden-env.js';
import { BIN, ROOT, runCli, startWardenProcess } from '../helpers/warden-process.js';

const DANA = 'dana-pw-4';
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-cli-admin-'));

/** Run the CLI with exactly this environment (PATH only besides), in an empty directory. */
function runBare(args: string[], env: Record<string, string>): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env }, cwd: tmp });
    let out = '';
    let err = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out, err });
    });
  });
}

describe('admin API commands with only WARDEN_ADMIN_URL and the approver password', () => {
  let env: TestEnv;
  let adminUrl: string;

  beforeAll(async () => {
    env = await startEnv({
      yaml: (pgPort) => `version: 1
listen: { host: 127.0.0.1, port: 0 }
admin: { host: 127.0.0.1, port: 0 }
databases:
  app:
    upstream: postgres://warden_svc:${SVC_PASSWORD}@127.0.0.1:${pgPort}/app
identities:
  - { name: alice, kind: human, groups: [analysts], password: ${PASSWORDS.alice} }
  - { name: dana, kind: human, groups: [dba], password: ${DANA} }
state: { store: "sqlite:${path.join(tmp, 'state.db')}" }
approvals: { mode: hold, timeout: 30s }
rules:
  - name: billing-writes-need-approval
    match: { statement: [write], tables: ["billing.*"] }
    action: approve
    approvers: { groups: [dba], count: 1 }
`,
    });
    await direct(env.cluster, 'CREATE SCHEMA billing AUTHORIZATION warden_svc');
    await direct(env.cluster, "CREATE TABLE billing.invoices (id int PRIMARY KEY, status text); INSERT INTO billing.invoices VALUES (1, 'open')");
    await direct(env.cluster, 'ALTER TABLE billing.invoices OWNER TO warden_svc');
    adminUrl = `http://127.0.0.1:${env.warden.admin!.port}`;
  }, 60_000);

  afterAll(async () => {
    await env?.stop();
  });

  it('lists and approves a held statement with no config file and no other variable', async () => {
    const alice = new pg.Client(env.client('alice'));
    await alice.connect();
    try {
      const held = alice.query("UPDATE billing.invoices SET status = 'paid' WHERE id = 1");
      let listed: { code: number | null; out: string; err: string } | undefined;
      const t0 = Date.now();
      while (Date.now() - t0 < 15_000) {
        listed = await runBare(['approvals', 'list', '--as', 'dana', '--json'], { WARDEN_ADMIN_URL: adminUrl, WARDEN_PASSWORD: DANA });
        if (listed.code !== 0 || JSON.parse(listed.out).length > 0) break;
      }
      expect(listed!.code, listed!.err).toBe(0);
      const requests = JSON.parse(listed!.out) as { id: string; identity: string; sql: string }[];
      expect(requests).toHaveLength(1);
      expect(requests[0]).toMatchObject({ identity: 'alice', sql: "UPDATE billing.invoices SET status = 'paid' WHERE id = 1" });

      // The same with --admin-url instead of the variable; then approve.
      const approved = await runBare(['approvals', 'approve', requests[0].id, '--as', 'dana', '--reason', 'month-end', '--admin-url', adminUrl], { WARDEN_PASSWORD: DANA });
      expect(approved.code, approved.err).toBe(0);
      expect(approved.out).toContain(`${requests[0].id}: approved`);
      expect((await held).rowCount).toBe(1);
    } finally {
      await alice.end();
    }
  });

  it('a wrong password is refused by the server, and no admin URL anywhere is a clear error', async () => {
    const wrong = await runBare(['approvals', 'list', '--as', 'dana'], { WARDEN_ADMIN_URL: adminUrl, WARDEN_PASSWORD: 'nope' });
    expect(wrong.code).toBe(1);
    expect(wrong.err).toMatch(/password authentication failed for "dana" \(HTTP 401\)/);
    const nowhere = await runBare(['approvals', 'list', '--as', 'dana'], { WARDEN_PASSWORD: DANA });
    expect(nowhere.code).toBe(2);
    expect(nowhere.err).toMatch(/--admin-url URL or set WARDEN_ADMIN_URL/);
    const bad = await runBare(['approvals', 'list', '--as', 'dana', '--admin-url', 'ftp://x'], { WARDEN_PASSWORD: DANA });
    expect(bad.code).toBe(2);
  });

  it('with a config, only its admin section is read: unset variables elsewhere do not matter', async () => {
    const file = path.join(tmp, 'warden.yaml');
    fs.writeFileSync(
      file,
      `version: 1
admin: { host: 127.0.0.1, port: ${env.warden.admin!.port} }
databases:
  app: { upstream: "postgres://warden_svc:\${APP_DB_PASSWORD}@127.0.0.1:5432/app" }
identities:
  - { name: dana, kind: human, groups: [dba], password: "\${DANA_PASSWORD}" }
sensitive: { key: "\${WARDEN_MASK_KEY}" }
`,
    );
    const r = await runBare(['approvals', 'list', '--as', 'dana', '--config', file], { WARDEN_PASSWORD: DANA });
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/no pending approval requests/);
    // The whole file is still checked by config check, which names every unset variable.
    const check = await runBare(['config', 'check', '--config', file, '--json'], {});
    expect(check.code).toBe(2);
    const problems = (JSON.parse(check.out) as { problems: { path: string; message: string }[] }).problems;
    expect(problems.map((p) => p.message)).toEqual([
      'environment variable APP_DB_PASSWORD is not set',
      'environment variable DANA_PASSWORD is not set',
      'environment variable WARDEN_MASK_KEY is not set',
    ]);
  });
});

describe('config check and --version', () => {
  it('lists every problem at once, in document order, as text and as JSON', async () => {
    const file = path.join(tmp, 'broken.yaml');
    fs.writeFileSync(
      file,
      `version: 1
listen: { host: 127.0.0.1, port: lots }
admin: { port: 7070, auditors: [auditorz] }
databases:
  app: { upstream: "postgres://svc:\${NO_SUCH_PASSWORD}@127.0.0.1/app", tls: maybe }
identities:
  - { name: alice, kind: person, groups: [analysts], password: "\${NO_SUCH_ALICE}" }
  - { name: dana, kind: human, groups: [dba], password: x }
rules:
  - name: needs-approval
    match: { statement: [write] }
    action: approve
    approvers: { groups: [dbas], count: 1 }
`,
    );
    const json = await runCli(['config', 'check', '--config', file, '--json'], {}, tmp);
    expect(json.code).toBe(2);
    const r = JSON.parse(json.out) as { ok: boolean; source: string; problems: { path: string; message: string }[] };
    expect(r.ok).toBe(false);
    expect(r.source).toBe(file);
    expect(r.problems.map((p) => p.path)).toEqual([
      'listen.port',
      'admin.auditors[0]',
      'databases.app.upstream',
      'databases.app.tls',
      'identities[0].kind',
      'identities[0].password',
      'rules[0].approvers.groups[0]',
    ]);
    expect(r.problems.find((p) => p.path === 'rules[0].approvers.groups[0]')!.message).toMatch(/no identity is in group "dbas".*analysts, dba/);
    expect(r.problems.find((p) => p.path === 'admin.auditors[0]')!.message).toMatch(/no identity is in group "auditorz"/);
    expect(JSON.stringify(r)).not.toContain('NO_SUCH_PASSWORD}'); // named as a variable, never as a value
    const text = await runCli(['config', 'check', '--config', file], {}, tmp);
    expect(text.code).toBe(2);
    expect(text.out).toContain(`${file}: 7 problems`);
    expect(text.out).toContain('  databases.app.upstream: environment variable NO_SUCH_PASSWORD is not set');
    // A missing file is JSON too for a program that asked for it.
    const missing = await runCli(['config', 'check', '--config', path.join(tmp, 'nope.yaml'), '--json'], {}, tmp);
    expect(missing.code).toBe(2);
    expect(JSON.parse(missing.out)).toMatchObject({ ok: false, problems: [{ path: '', message: expect.stringContaining('configuration file not found') }] });
  });

  it('an approver group no identity is in is an error on its own', async () => {
    const file = path.join(tmp, 'group.yaml');
    const yaml = (group: string) => `version: 1
databases: { app: { upstream: "postgres://svc@127.0.0.1/app" } }
identities: [{ name: dana, kind: human, groups: [dba], password: x }]
rules:
  - { name: r, match: { statement: [write] }, action: approve, approvers: { groups: [${group}], count: 1 } }
`;
    fs.writeFileSync(file, yaml('dbas'));
    const bad = await runCli(['config', 'check', '--config', file, '--json'], {}, tmp);
    expect(bad.code).toBe(2);
    expect(JSON.parse(bad.out).problems).toEqual([
      { path: 'rules[0].approvers.groups[0]', message: 'no identity is in group "dbas", so nobody can approve what this rule holds as it (groups identities are in: dba)' },
    ]);
    fs.writeFileSync(file, yaml('dba'));
    const good = await runCli(['config', 'check', '--config', file, '--json'], {}, tmp);
    expect(good.code, good.err).toBe(0);
    expect(JSON.parse(good.out)).toMatchObject({ ok: true, problems: [] });
  });

  it('warden start runs with such a group, and logs a warning naming it', async () => {
    const w = await startWardenProcess(
      `version: 1
listen: { host: 127.0.0.1, port: __PORT__ }
databases: { app: { upstream: "postgres://svc@127.0.0.1:1/app" } }
identities: [{ name: dana, kind: human, groups: [dba], password: x }]
rules:
  - { name: r, match: { statement: [write] }, action: approve, approvers: { groups: [dbas], count: 1 } }
`,
      {},
      'warn',
    );
    try {
      const t0 = Date.now();
      while (!w.stderr().includes('dbas') && Date.now() - t0 < 5_000) await new Promise((r) => setTimeout(r, 50));
      expect(w.stderr()).toMatch(/rules\[0\]\.approvers\.groups\[0\]: no identity is in group \\?"dbas\\?"/);
    } finally {
      await w.stop();
    }
  });

  it('--version prints the version of package.json', async () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string };
    const r = await runCli(['--version'], {}, tmp);
    expect(r.code).toBe(0);
    expect(r.out.trim()).toBe(pkg.version);
  });
});
