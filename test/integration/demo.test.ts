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
import { BIN, ROOT, runCli } from '../helpers/warden-process.js';
import { freePort } from '../../src/embedded/free-port.js';

// PostgreSQL's binaries are there in the test harness; PGlite is what a machine without them gets.
it.each(['postgresql', 'pglite'] as const)('on %s: starts, answers as the banner says, and cleans up on SIGINT', async (upstream) => {
  const [port, adminPort] = [await freePort(), await freePort()];
  const args = ['--port', String(port), '--admin-port', String(adminPort)];
  const env = { ...process.env, WARDEN_DEMO_UPSTREAM: upstream };
  // `npm start` as the README says, in its own process group so that SIGINT reaches it the way a
  // terminal's Ctrl-C does. A developer's own ./warden.yaml in the checkout would start that
  // instead of the demo: then run the same command from an empty directory.
  const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-demo-cwd-'));
  onTestFinished(() => fs.rmSync(cwd, { recursive: true, force: true }));
  const viaNpm = !fs.existsSync(path.join(ROOT, 'warden.yaml'));
  const child = viaNpm
    ? spawn('npm', ['start', '--silent', '--', ...args], { cwd: ROOT, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] })
    : spawn(process.execPath, [BIN, 'start', ...args], { cwd, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  const group = (signal: NodeJS.Signals): void => {
    try {
      process.kill(-child.pid!, signal);
    } catch {
      /* already gone */
    }
  };
  // Whatever happens below, do not leave the demo (and its cluster) running.
  onTestFinished(() => group('SIGTERM'));
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const t0 = Date.now();
  while (!out.includes('Press Ctrl-C') && child.exitCode === null && Date.now() - t0 < 60_000) await new Promise((r) => setTimeout(r, 100));
  expect(out, err).toContain('Press Ctrl-C');
  expect(out).toContain(`Warden (PostgreSQL protocol)  127.0.0.1:${port}`);
  expect(out).toContain(`http://127.0.0.1:${adminPort}/metrics`);

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

  // The banner's psql line, pasted into a shell as it is.
  const psqlLine = (who: string): string => new RegExp(`(PGPASSWORD=\\S+ psql "host=127.0.0.1 port=\\d+ user=${who} dbname=app")`).exec(out)![1];
  const shell = spawnSync('sh', ['-c', `${psqlLine('trainer')} -X -A -t -c 'SELECT email FROM customers WHERE id = 2' -c 'DROP TABLE orders'`], { encoding: 'utf8', timeout: 30_000 });
  expect(shell.stdout).toMatch(/@/);
  expect(shell.stderr).toMatch(/ERROR:\s+denied by rule "no-destructive-ddl"/);
  const dbaShell = spawnSync('sh', ['-c', `${psqlLine('dana')} -X -A -t -c 'SELECT email FROM customers WHERE id = 2'`], { encoding: 'utf8', timeout: 30_000 });
  expect(dbaShell.status, dbaShell.stderr).toBe(0);
  expect(dbaShell.stdout.trim()).toMatch(/@/);
  expect(dbaShell.stdout.trim()).not.toBe(shell.stdout.trim()); // the agent's was a fake

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

  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  group('SIGINT');
  // Warden exits 0; npm itself, interrupted too, ends by the same signal (as in a terminal).
  expect([{ code: 0, signal: null }, { code: null, signal: 'SIGINT' }]).toContainEqual(await exited);
  expect(err).toContain('stopping the demo');
  // Nothing of the demo is left running: no process of its group (npm may end before Warden has
  // finished stopping: give that 15 s), no listener on its ports.
  const groupGone = async (): Promise<boolean> => {
    for (let i = 0; i < 150; i++) {
      if (spawnSync('pgrep', ['-g', String(child.pid)]).status === 1) return true;
      await new Promise((r) => setTimeout(r, 100));
    }
    return false;
  };
  expect(await groupGone()).toBe(true);
  await expect(new pg.Client({ host: '127.0.0.1', port, user: 'x', connectionTimeoutMillis: 2000 }).connect()).rejects.toThrow(/ECONNREFUSED/);
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
