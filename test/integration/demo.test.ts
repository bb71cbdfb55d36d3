/**
 * `npm start` with no configuration runs the embedded demo: follow its banner
 * with real clients, then Ctrl-C, and check nothing is left behind.
 */
import { expect, it, onTestFinished } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { BIN, runCli } from '../helpers/warden-process.js';

it('starts, answers as the banner says, and cleans up on SIGINT', async () => {
  const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-demo-cwd-'));
  const child = spawn(process.execPath, [BIN, 'start'], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  // Whatever happens below, do not leave the demo (and its cluster) running.
  onTestFinished(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const t0 = Date.now();
  while (!out.includes('Press Ctrl-C') && child.exitCode === null && Date.now() - t0 < 60_000) await new Promise((r) => setTimeout(r, 100));
  expect(out, err).toContain('Press Ctrl-C');

  let maskedEmail = "";
  const login = (who: string) => {
    const m = new RegExp(`PGPASSWORD=(\\S+) psql "host=127.0.0.1 port=(\\d+) user=${who} dbname=app"`).exec(out);
    expect(m, `banner line for ${who}`).not.toBeNull();
    return new pg.Client({ host: '127.0.0.1', port: Number(m![2]), user: who, password: m![1], database: 'app' });
  };
  const dataDir = /data in (\S+) \(removed on exit\)/.exec(out)![1];
  expect(fs.existsSync(dataDir)).toBe(true);

  const agent = login('trainer');
  await agent.connect();
  try {
    // Masked: realistic fakes, never the real values (the DBA sees those below).
    const masked = await agent.query('SELECT id, email, ssn FROM customers WHERE id = 1');
    expect(masked.rows[0].email).toMatch(/@/);
    maskedEmail = masked.rows[0].email as string;
    expect(masked.rows[0].ssn).toMatch(/^\*\*\*-\*\*-\d{4}$/);
    expect((await agent.query('SELECT count(*)::int AS n FROM customers')).rows[0].n).toBe(40);
    await expect(agent.query('DROP TABLE orders')).rejects.toMatchObject({ code: '42501', message: /no-destructive-ddl/ });
    await expect(agent.query("INSERT INTO orders (item) VALUES ('x')")).rejects.toMatchObject({ code: '42501', message: /agents-read-only/ });
  } finally {
    await agent.end();
  }
  const analyst = login('alice');
  await analyst.connect();
  try {
    // Held for a DBA's approval, given from a "second terminal" with the banner's commands.
    const held = analyst.query("UPDATE billing.invoices SET status = 'paid' WHERE id = 1");
    const danaPw = /WARDEN_PASSWORD=(\S+) node bin\/warden\.js approvals list/.exec(out)![1];
    const configFile = /approvals list --config (\S+) --as dana/.exec(out)![1];
    let id: string | undefined;
    for (let i = 0; i < 50 && !id; i++) {
      const list = await runCli(['approvals', 'list', '--config', configFile, '--as', 'dana', '--json'], { WARDEN_PASSWORD: danaPw });
      expect(list.code, list.err).toBe(0);
      id = (JSON.parse(list.out) as { id: string }[])[0]?.id;
      if (!id) await new Promise((r) => setTimeout(r, 100));
    }
    expect(id).toBeDefined();
    const approve = await runCli(['approvals', 'approve', id!, '--config', configFile, '--as', 'dana', '--reason', 'month-end close'], { WARDEN_PASSWORD: danaPw });
    expect(approve.code, approve.err).toBe(0);
    expect((await held).rowCount).toBe(1);
  } finally {
    await analyst.end();
  }
  const dba = login('dana');
  await dba.connect();
  try {
    const real = (await dba.query('SELECT email FROM customers WHERE id = 1')).rows[0].email as string;
    expect(real).toMatch(/@/);
    expect(real).not.toBe(maskedEmail);
  } finally {
    await dba.end();
  }

  child.kill('SIGINT');
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  expect(code).toBe(0);
  // The audit log the banner names survives the demo and holds the tour, verifiably.
  const auditStore = /audit tail --store (sqlite:[^\s)]+)/.exec(out)![1];
  const tail = await runCli(['audit', 'search', '--store', auditStore, '--identity', 'trainer', '--action', 'deny', '--json']);
  expect(tail.code, tail.err).toBe(0);
  expect(tail.out).toMatch(/DROP TABLE orders/);
  const approvals = await runCli(['audit', 'search', '--store', auditStore, '--type', 'approval.', '--json', '--since', '10m']);
  expect(approvals.out).toMatch(/"approval.requested"/);
  expect(approvals.out).toMatch(/"approval.decided".*"dana"|"dana".*"approval.decided"/);
  const verify = await runCli(['audit', 'verify', '--store', auditStore]);
  expect(verify.code, verify.out).toBe(0);
  expect(fs.existsSync(dataDir)).toBe(false);
  expect(fs.existsSync(path.dirname(dataDir))).toBe(false);
  // No server process of the demo's cluster is left running.
  expect(spawnSync('pgrep', ['-f', dataDir]).status).toBe(1);
}, 120_000);
