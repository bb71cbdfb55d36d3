/** Spawn real client programs asynchronously (Warden may run in the test process). */
import { spawn } from 'node:child_process';

export interface RunResult {
  code: number | null;
  out: string;
  err: string;
}

export function run(cmd: string, args: string[], env: NodeJS.ProcessEnv, input?: string, timeoutMs = 120_000): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out, err });
    });
    child.stdin.end(input ?? '');
  });
}

export interface PsqlOptions {
  port: number;
  user: string;
  password: string;
  database: string;
  args: string[];
  input?: string;
  /** Extra libpq environment, e.g. PGSSLMODE. */
  env?: Record<string, string>;
}

export function runPsql(o: PsqlOptions): Promise<RunResult> {
  return run(
    'psql',
    ['-X', '-h', '127.0.0.1', '-p', String(o.port), '-U', o.user, '-d', o.database, ...o.args],
    { ...process.env, PGPASSWORD: o.password, PGCONNECT_TIMEOUT: '10', ...o.env },
    o.input,
  );
}

/** Run psql, press ^C (SIGINT) after `afterMs`, and report its stderr and how long it took to exit after the ^C. */
export function psqlInterrupted(args: string[], env: NodeJS.ProcessEnv, afterMs = 1000): Promise<{ err: string; elapsedMs: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn('psql', ['-X', ...args], { env });
    let err = '';
    let t0 = 0;
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    const timer = setTimeout(() => {
      t0 = Date.now();
      child.kill('SIGINT');
    }, afterMs);
    child.on('exit', () => {
      clearTimeout(timer);
      resolve({ err, elapsedMs: t0 ? Date.now() - t0 : 0 });
    });
  });
}
