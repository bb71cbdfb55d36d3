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

// PostgreSQL's binaries are there in the test harness; PGlite is what a machine without them gets.
it.each(['postgresql', 'pglite'] as const)('on %s: starts, answers as the banner says, and cleans up on SIGINT', async (upstream) => {
  const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-demo-cwd-'));
  onTestFinished(() => fs.rmSync(cwd, { recursive: true, force: true }));
  const child = spawn(process.execPath, [BIN, 'start'], {
    cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, WARDEN_DEMO_UPSTREAM: upstream },
  });
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
  const demoDir = /Demo config and state\s+(\S+) \(removed on exit\)/.exec(out)![1];
  expect(fs.existsSync(demoDir)).toBe(true);
  const dataDir = upstream === 'postgresql' ? /data in (\S+) \(removed on exit\)/.exec(out)![1] : undefined;
  if (dataDir) expect(fs.existsSync(dataDir)).toBe(true);
  if (upstream === 'pglite') expect(out).toMatch(/PGlite serves one session at a time/);

  // The agent's session stays open through the tour: the others' sessions come and go beside it.
  const agent = login('trainer');
  await agent.connect();
  onTestFinished(() => agent.end().catch(() => undefined));
  {
    // Masked: realistic fakes, never the real values (the DBA sees those below).
    // First thing, inside a transaction: Warden read the sensitive columns at start, so it does
    // not need the catalog now (on PGlite it would wait for this very transaction to end).
    await agent.query('BEGIN');
    const masked = await agent.query('SELECT id, email, ssn FROM customers WHERE id = 1');
    await agent.query('COMMIT');
    expect(masked.rows[0].email).toMatch(/@/);
    maskedEmail = masked.rows[0].email as string;
    expect(masked.rows[0].ssn).toMatch(/^\*\*\*-\*\*-\d{4}$/);
    expect((await agent.query('SELECT count(*)::int AS n FROM customers')).rows[0].n).toBe(40);
    await expect(agent.query('DROP TABLE orders')).rejects.toMatchObject({ code: '42501', message: /no-destructive-ddl/ });
    await expect(agent.query("INSERT INTO orders (item) VALUES ('x')")).rejects.toMatchObject({ code: '42501', message: /agents-read-only/ });
  }
  const analyst = login('alice');
  await analyst.connect();
  let realEmail = '';
  try {
    // Held for a DBA's approval, given from a "second terminal" with the banner's commands.
    const held = analyst.query("UPDATE billing.invoices SET status = 'paid' WHERE id = 1");
    // While it waits, the DBA (another session) reads the real values.
    const dba = login('dana');
    await dba.connect();
    try {
      realEmail = (await dba.query('SELECT email FROM customers WHERE id = 1')).rows[0].email as string;
      expect(realEmail).toMatch(/@/);
      expect(realEmail).not.toBe(maskedEmail);
      expect((await dba.query("SELECT current_setting('warden.identity') AS who")).rows[0].who).toBe('dana');
    } finally {
      await dba.end();
    }
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
    expect((await analyst.query("SELECT current_setting('warden.identity') AS who")).rows[0].who).toBe('alice');
  } finally {
    await analyst.end();
  }
  // Each session is still who it logged in as, and still masked.
  expect((await agent.query("SELECT current_setting('warden.identity') AS who")).rows[0].who).toBe('trainer');
  expect((await agent.query('SELECT email FROM customers WHERE id = 1')).rows[0].email).toBe(maskedEmail);
  expect((await agent.query('SELECT status FROM billing.invoices WHERE id = 1')).rows[0].status).toBe('paid');
  await agent.end();

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
  expect(fs.existsSync(demoDir)).toBe(false);
  if (dataDir) {
    expect(fs.existsSync(dataDir)).toBe(false);
    expect(fs.existsSync(path.dirname(dataDir))).toBe(false);
    // No server process of the demo's cluster is left running.
    expect(spawnSync('pgrep', ['-f', dataDir]).status).toBe(1);
  }
}, 120_000);
