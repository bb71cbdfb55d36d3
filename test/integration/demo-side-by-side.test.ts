/**
 * Two demos on one machine at once: each has its own private audit directory (unique, 0700,
 * named in its banner), both serve queries, and after Ctrl-C each banner's `audit verify`
 * command — pasted into a shell as printed — checks that demo's chain and signed checkpoints
 * (another demo's public key fails them).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect, it, onTestFinished } from 'vitest';
import { BIN } from '../helpers/warden-process.js';
import { freePort } from '../../src/embedded/free-port.js';

interface Running {
  child: ChildProcess;
  out: () => string;
  err: () => string;
  port: number;
}

async function startDemo(cwd: string): Promise<Running> {
  const [port, adminPort] = [await freePort(), await freePort()];
  const child = spawn(process.execPath, [BIN, 'start', '--port', String(port), '--admin-port', String(adminPort)], {
    cwd,
    env: { ...process.env, WARDEN_DEMO_UPSTREAM: 'postgresql' },
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  onTestFinished(() => {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      /* gone */
    }
  });
  return { child, out: () => out, err: () => err, port };
}

const sh = (line: string) => spawnSync('sh', ['-c', line], { encoding: 'utf8', timeout: 60_000 });

it('two demos run side by side, each with its own private audit log that its banner verifies with signatures', async () => {
  // From an empty directory (no ./warden.yaml): the banner's commands then name the CLI by its full path.
  const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-demo-pair-'));
  onTestFinished(() => fs.rmSync(cwd, { recursive: true, force: true }));
  const demos = [await startDemo(cwd), await startDemo(cwd)];
  const t0 = Date.now();
  while (demos.some((d) => !d.out().includes('Press Ctrl-C') && d.child.exitCode === null) && Date.now() - t0 < 60_000) await new Promise((r) => setTimeout(r, 100));
  for (const d of demos) expect(d.out(), d.err()).toContain('Press Ctrl-C');

  const dirs = demos.map((d) => /The audit log is kept after the demo stops, in (\S+) \(private to you/.exec(d.out())![1]!);
  for (const dir of dirs) onTestFinished(() => fs.rmSync(dir, { recursive: true, force: true }));
  expect(dirs[0]).not.toBe(dirs[1]);
  for (const dir of dirs) {
    expect(path.basename(dir)).toMatch(/^warden-demo-audit-\w{6}$/);
    expect(fs.statSync(dir).mode & 0o777).toBe(0o700);
    expect(fs.statSync(path.join(dir, 'signing.pem')).mode & 0o777).toBe(0o600);
  }

  // Both serve queries at the same time, through the banner's own psql lines.
  const served = demos.map((d) => {
    const line = /(PGPASSWORD=\S+ psql "host=127.0.0.1 port=\d+ user=dana dbname=app")/.exec(d.out())![1]!;
    return new Promise<ReturnType<typeof sh>>((resolve) => {
      const c = spawn('sh', ['-c', `${line} -X -A -t -c "SELECT current_setting('warden.identity') || ' ' || count(*) FROM customers"`]);
      let stdout = '';
      let stderr = '';
      c.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
      c.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
      c.on('close', (status) => resolve({ status, stdout, stderr } as ReturnType<typeof sh>));
    });
  });
  for (const r of await Promise.all(served)) {
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe('dana 40');
  }

  // Ctrl-C both; each keeps its audit log.
  const exits = demos.map((d) => new Promise((r) => d.child.on('exit', r)));
  for (const d of demos) process.kill(-d.child.pid!, 'SIGINT');
  await Promise.all(exits);
  for (const dir of dirs) expect(fs.existsSync(path.join(dir, 'audit.db'))).toBe(true);

  // The banner's verify command, pasted as printed: the chain and its signed checkpoints.
  const verifyLines = demos.map((d) => /^\s+(node \S+ audit verify --store sqlite:\S+ --public-key \S+)$/m.exec(d.out())![1]!);
  for (const [i, line] of verifyLines.entries()) {
    expect(line).toContain(dirs[i]);
    const r = sh(line);
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^OK +demo: \d+ records, last seq \d+, [1-9]\d* checkpoint\(s\)$/m);
    expect(r.stdout).not.toMatch(/signatures not checked/);
    expect(r.stdout).toContain('audit log verified: no tampering found');
  }
  // The signatures are checked: the other demo's public key does not verify this log.
  const crossed = sh(verifyLines[0]!.replace(/--public-key \S+/, `--public-key ${path.join(dirs[1]!, 'signing.pub.pem')}`));
  expect(crossed.status).toBe(1);
  expect(crossed.stdout).toContain('audit log FAILED verification');
}, 120_000);
