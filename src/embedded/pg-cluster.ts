/**
 * A private, throw-away PostgreSQL cluster: used by the integration tests, the benchmark
 * (bench/run.js) and the `npm start` demo.
 *
 * - Everything lives in one temp dir (`mkdtemp` under `os.tmpdir()`): `data/` (the data dir,
 *   with `postgres.log`) and the Unix socket. `stop()` removes it.
 * - PostgreSQL refuses to run as root: when we are root, initdb / pg_ctl run as the `postgres`
 *   OS user through `runuser -u postgres --` and the temp dir is chowned to it. When we are not
 *   root they run as the current user.
 * - Tuned for speed, not durability (fsync, synchronous_commit and full_page_writes off).
 * - Clusters still running when the process exits are stopped (`pg_ctl stop -m immediate`)
 *   and their dirs removed by a process 'exit' hook, so a crashed test leaves nothing behind.
 */
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { constants as fsConstants, readFileSync, rmSync } from 'node:fs';
import { access, chmod, chown, mkdtemp, readFile, readdir, realpath, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { freePort } from './free-port.js';

export { freePort } from './free-port.js';

export interface PgClusterOptions {
  /** TCP port on 127.0.0.1; default: a free port. */
  port?: number;
  /** Password of the `postgres` superuser; default: random. */
  superPassword?: string;
  /**
   * `scram` (default): trust on the Unix socket, scram-sha-256 on 127.0.0.1 for everyone.
   * `mixed`: as `scram`, except that the roles `md5_user` (md5), `plain_user` (password, i.e.
   * cleartext) and `trust_user` (trust) get their own method, on the socket and on 127.0.0.1.
   */
  hba?: 'scram' | 'mixed';
  /** Extra server settings (`-c name=value`), applied after (so overriding) the defaults. */
  settings?: Record<string, string>;
  /** `log_statement=all` (the log is `<dataDir>/postgres.log`). */
  logStatements?: boolean;
}

export interface PgCluster {
  host: '127.0.0.1';
  port: number;
  superuser: 'postgres';
  superPassword: string;
  /** The data directory (inside the cluster's temp dir). */
  dataDir: string;
  /** Where initdb / pg_ctl / postgres were taken from. */
  binDir: string;
  /**
   * A `postgres://` URL to this cluster. Defaults: db `postgres`, user `postgres`; the password
   * defaults to the superuser's when the user is `postgres`, otherwise it is left out.
   */
  url(db?: string, user?: string, password?: string): string;
  /** Run one query as the superuser (own connection, scram over TCP). */
  query(sql: string, db?: string): Promise<pg.QueryResult>;
  /** Fast shutdown, then remove the temp dir. Idempotent. */
  stop(): Promise<void>;
}

const HOST = '127.0.0.1' as const;
const SUPERUSER = 'postgres' as const;
const OS_USER = 'postgres';

/* ------------------------------------------------------------------------------------------ */
/* Binaries                                                                                    */
/* ------------------------------------------------------------------------------------------ */

async function isExecutable(file: string): Promise<boolean> {
  try {
    await access(file, fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
}

async function hasTools(dir: string, tools: string[]): Promise<boolean> {
  for (const t of tools) if (!(await isExecutable(path.join(dir, t)))) return false;
  return true;
}

/**
 * The directory holding `pg_ctl` and `initdb`: the one found on PATH (symlinks resolved, so
 * `/usr/local/bin/pg_ctl -> /usr/lib/postgresql/15/bin/pg_ctl` gives the latter), else the
 * newest `/usr/lib/postgresql/<version>/bin`. Throws a clear Error when there is none.
 */
export async function findPgBinDir(): Promise<string> {
  const tools = ['pg_ctl', 'initdb'];
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const pgCtl = path.join(dir, 'pg_ctl');
    if (!(await isExecutable(pgCtl))) continue;
    try {
      const realDir = path.dirname(await realpath(pgCtl));
      if (await hasTools(realDir, [...tools, 'postgres'])) return realDir;
    } catch {
      /* fall through to the PATH dir itself */
    }
    if (await hasTools(dir, tools)) return dir;
  }

  const root = '/usr/lib/postgresql';
  let versions: string[] = [];
  try {
    versions = await readdir(root);
  } catch {
    /* none installed there */
  }
  const byNewest = versions
    .filter((v) => /^\d+(\.\d+)?$/.test(v))
    .sort((a, b) => Number.parseFloat(b) - Number.parseFloat(a));
  for (const v of byNewest) {
    const dir = path.join(root, v, 'bin');
    if (await hasTools(dir, tools)) return dir;
  }
  throw new Error(
    'PostgreSQL server binaries not found: no pg_ctl/initdb on PATH and no /usr/lib/postgresql/<version>/bin ' +
      'containing them. Install the PostgreSQL server package (e.g. `apt-get install postgresql`) ' +
      'or put its bin directory on PATH.',
  );
}

/* ------------------------------------------------------------------------------------------ */
/* Running as the postgres OS user                                                             */
/* ------------------------------------------------------------------------------------------ */

interface RunAs {
  /** true: we are root and run server programs through `runuser -u postgres --`. */
  viaRunuser: boolean;
  /** Path of `runuser` when viaRunuser. */
  runuser?: string;
  uid?: number;
  gid?: number;
}

function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

let runAsCache: RunAs | undefined;

function resolveRunAs(): RunAs {
  if (runAsCache) return runAsCache;
  if (!isRoot()) return (runAsCache = { viaRunuser: false });
  let uid: number;
  let gid: number;
  try {
    uid = Number(execFileSync('id', ['-u', OS_USER], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim());
    gid = Number(execFileSync('id', ['-g', OS_USER], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim());
  } catch {
    throw new Error(
      `Running as root, and PostgreSQL refuses to run as root, but the '${OS_USER}' OS user does not exist. ` +
        `Create it (e.g. \`useradd --system ${OS_USER}\`; .ci/run does this) or run as a non-root user.`,
    );
  }
  if (!Number.isInteger(uid) || !Number.isInteger(gid)) {
    throw new Error(`Could not determine the uid/gid of the '${OS_USER}' OS user`);
  }
  return (runAsCache = { viaRunuser: true, uid, gid });
}

function commandFor(runAs: RunAs, bin: string, args: string[]): [string, string[]] {
  return runAs.viaRunuser ? [runAs.runuser ?? 'runuser', ['-u', OS_USER, '--', bin, ...args]] : [bin, args];
}

interface RunResult {
  stdout: string;
  stderr: string;
}

class CommandError extends Error {
  constructor(
    message: string,
    readonly stdout: string,
    readonly stderr: string,
  ) {
    super(message);
  }
}

function run(runAs: RunAs, bin: string, args: string[], cwd: string, timeoutMs = 120_000): Promise<RunResult> {
  const [cmd, argv] = commandFor(runAs, bin, args);
  return new Promise((resolve, reject) => {
    execFile(
      cmd,
      argv,
      { cwd, timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024, env: { ...process.env, LC_ALL: 'C' } },
      (err, stdout, stderr) => {
        if (err) {
          const e = err as NodeJS.ErrnoException & { code?: string | number; killed?: boolean };
          let why: string;
          if (e.code === 'ENOENT') why = `${cmd} not found`;
          else if (e.killed) why = `timed out after ${timeoutMs} ms`;
          else why = `exit code ${String(e.code)}`;
          const detail = [stderr.trim(), stdout.trim()].filter(Boolean).join('\n');
          reject(new CommandError(`${path.basename(bin)} failed (${why})${detail ? `:\n${detail}` : ''}`, stdout, stderr));
        } else {
          resolve({ stdout, stderr });
        }
      },
    );
  });
}

/** Quote one word for /bin/sh (pg_ctl passes `-o` through the shell). */
function shQuote(s: string): string {
  return /^[A-Za-z0-9_.,:/=@%+-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/* ------------------------------------------------------------------------------------------ */
/* Clean-up of clusters left running                                                           */
/* ------------------------------------------------------------------------------------------ */

interface LiveCluster {
  tmpDir: string;
  dataDir: string;
  binDir: string;
  runAs: RunAs;
}

const live = new Map<string, LiveCluster>();
let hooksInstalled = false;

function stopSync(c: LiveCluster): void {
  const [cmd, argv] = commandFor(c.runAs, path.join(c.binDir, 'pg_ctl'), ['stop', '-D', c.dataDir, '-m', 'immediate', '-w', '-t', '15']);
  try {
    spawnSync(cmd, argv, { cwd: c.tmpDir, stdio: 'ignore', timeout: 20_000 });
  } catch {
    /* best effort */
  }
  killPostmaster(c.dataDir, 'SIGQUIT');
  try {
    rmSync(c.tmpDir, { recursive: true, force: true });
  } catch {
    /* best effort */
  }
}

/** Signal the postmaster named in postmaster.pid, if the file is still there and it lives. */
function killPostmaster(dataDir: string, signal: NodeJS.Signals): boolean {
  try {
    const pid = Number(readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    if (Number.isInteger(pid) && pid > 1) {
      process.kill(pid, signal);
      return true;
    }
  } catch {
    /* no pid file or no such process */
  }
  return false;
}

function stopAllSync(): void {
  for (const c of [...live.values()]) {
    live.delete(c.tmpDir);
    stopSync(c);
  }
}

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', stopAllSync);
  // A fatal signal does not run 'exit' hooks. When nobody else handles the signal (so the default
  // action, dying, is what would happen), clean up and re-raise it. When someone else does handle
  // it, they decide whether to exit, and the 'exit' hook then does the clean-up.
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = (): void => {
      if (process.listenerCount(sig) > 1) return;
      stopAllSync();
      process.removeListener(sig, onSignal);
      process.kill(process.pid, sig);
    };
    process.on(sig, onSignal);
  }
}

/* ------------------------------------------------------------------------------------------ */
/* The cluster                                                                                 */
/* ------------------------------------------------------------------------------------------ */

function hbaConf(mode: 'scram' | 'mixed'): string {
  const lines = [
    '# Written by warden src/embedded/pg-cluster.ts',
    '# TYPE  DATABASE     USER        ADDRESS          METHOD',
  ];
  if (mode === 'mixed') {
    // NB: md5 auth only works for md5_user if its password is *stored* as md5, i.e. it was set
    // after `SET password_encryption = 'md5'` (the default, scram-sha-256, stores a SCRAM
    // verifier, and PostgreSQL then silently upgrades an md5 hba line to SCRAM).
    for (const [user, method] of [
      ['md5_user', 'md5'],
      ['plain_user', 'password'],
      ['trust_user', 'trust'],
    ] as const) {
      lines.push(`local   all          ${user.padEnd(11)}                  ${method}`);
      lines.push(`host    all          ${user.padEnd(11)} 127.0.0.1/32     ${method}`);
    }
  }
  lines.push(
    'local   all          all                          trust',
    'host    all          all         127.0.0.1/32     scram-sha-256',
    'local   replication  all                          trust',
    'host    replication  all         127.0.0.1/32     scram-sha-256',
  );
  return lines.join('\n') + '\n';
}

async function tailOf(file: string, maxChars = 4000): Promise<string> {
  try {
    const s = await readFile(file, 'utf8');
    return s.length > maxChars ? '…' + s.slice(-maxChars) : s;
  } catch {
    return '';
  }
}

async function connectOnce(port: number, password: string, db = 'postgres'): Promise<pg.Client> {
  const client = new pg.Client({ host: HOST, port, user: SUPERUSER, password, database: db, connectionTimeoutMillis: 10_000 });
  try {
    await client.connect();
  } catch (err) {
    await client.end().catch(() => undefined);
    throw err;
  }
  return client;
}

async function waitUntilAccepting(port: number, password: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  for (;;) {
    try {
      const c = await connectOnce(port, password);
      await c.query('SELECT 1');
      await c.end();
      return;
    } catch (err) {
      lastErr = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`PostgreSQL on ${HOST}:${port} did not accept connections within ${timeoutMs} ms: ${String(lastErr)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function startPgCluster(opts: PgClusterOptions = {}): Promise<PgCluster> {
  const binDir = await findPgBinDir();
  for (const tool of ['initdb', 'pg_ctl', 'postgres']) {
    if (!(await isExecutable(path.join(binDir, tool)))) {
      throw new Error(`PostgreSQL binary '${tool}' not found (or not executable) in ${binDir}`);
    }
  }
  const runAs = resolveRunAs();
  if (runAs.viaRunuser && !runAs.runuser) {
    const found = await findExecutable('runuser', ['/usr/sbin', '/sbin', '/usr/bin', '/bin']);
    if (!found) {
      throw new Error('Running as root needs `runuser` (util-linux) to start PostgreSQL as the postgres user, and it was not found');
    }
    runAs.runuser = found;
  }

  const superPassword = opts.superPassword ?? randomBytes(18).toString('base64url');
  const tmpDir = await mkdtemp(path.join(os.tmpdir(), 'warden-pg-'));
  const dataDir = path.join(tmpDir, 'data');
  const logFile = path.join(dataDir, 'postgres.log');
  const info: LiveCluster = { tmpDir, dataDir, binDir, runAs };

  let registered = false;
  try {
    if (runAs.viaRunuser) await chown(tmpDir, runAs.uid!, runAs.gid!);
    await chmod(tmpDir, 0o700);

    // initdb
    const pwFile = path.join(tmpDir, 'pwfile');
    await writeFile(pwFile, superPassword + '\n', { mode: 0o600 });
    if (runAs.viaRunuser) await chown(pwFile, runAs.uid!, runAs.gid!);
    try {
      await run(
        runAs,
        path.join(binDir, 'initdb'),
        ['-D', dataDir, '-U', SUPERUSER, `--pwfile=${pwFile}`, '--auth-local=trust', '--auth-host=scram-sha-256', '-E', 'UTF8', '--locale=C', '--no-sync'],
        tmpDir,
      );
    } catch (err) {
      throw new Error(`initdb failed in ${dataDir}: ${(err as Error).message}`);
    } finally {
      await rm(pwFile, { force: true });
    }

    // pg_hba.conf (written by us, owned by the postgres user like the rest of the data dir)
    const hbaFile = path.join(dataDir, 'pg_hba.conf');
    await writeFile(hbaFile, hbaConf(opts.hba ?? 'scram'), { mode: 0o600 });
    if (runAs.viaRunuser) await chown(hbaFile, runAs.uid!, runAs.gid!);

    live.set(tmpDir, info);
    registered = true;
    installHooks();

    // start; retry on a port race when we chose the port ourselves
    let port = opts.port ?? (await freePort());
    for (let attempt = 1; ; attempt++) {
      const settings: Record<string, string> = {
        listen_addresses: HOST,
        unix_socket_directories: tmpDir,
        fsync: 'off',
        synchronous_commit: 'off',
        full_page_writes: 'off',
        max_connections: '200',
        ...(opts.logStatements ? { log_statement: 'all' } : {}),
        ...(opts.settings ?? {}),
      };
      const o = ['-p', String(port), ...Object.entries(settings).flatMap(([k, v]) => ['-c', shQuote(`${k}=${v}`)])].join(' ');
      try {
        await run(runAs, path.join(binDir, 'pg_ctl'), ['start', '-w', '-t', '60', '-D', dataDir, '-l', logFile, '-o', o], tmpDir, 90_000);
        break;
      } catch (err) {
        const log = await tailOf(logFile);
        const portClash = /could not bind|Address already in use|could not create any TCP\/IP sockets/i.test(log);
        if (opts.port === undefined && portClash && attempt < 4) {
          killPostmaster(dataDir, 'SIGQUIT');
          await writeFile(logFile, '').catch(() => undefined);
          port = await freePort();
          continue;
        }
        throw new Error(`${(err as Error).message}\n--- ${logFile} ---\n${log}`);
      }
    }

    await waitUntilAccepting(port, superPassword, 30_000);

    let stopping: Promise<void> | undefined;
    const cluster: PgCluster = {
      host: HOST,
      port,
      superuser: SUPERUSER,
      superPassword,
      dataDir,
      binDir,
      url(db = 'postgres', user: string = SUPERUSER, password?: string): string {
        const pw = password ?? (user === SUPERUSER ? superPassword : undefined);
        const auth = encodeURIComponent(user) + (pw !== undefined ? ':' + encodeURIComponent(pw) : '');
        return `postgres://${auth}@${HOST}:${port}/${encodeURIComponent(db)}`;
      },
      async query(sql: string, db = 'postgres'): Promise<pg.QueryResult> {
        const client = await connectOnce(port, superPassword, db);
        try {
          return await client.query(sql);
        } finally {
          await client.end().catch(() => undefined);
        }
      },
      stop(): Promise<void> {
        stopping ??= (async () => {
          const pgCtl = path.join(binDir, 'pg_ctl');
          try {
            await run(runAs, pgCtl, ['stop', '-D', dataDir, '-m', 'fast', '-w', '-t', '30'], tmpDir, 40_000);
          } catch {
            try {
              await run(runAs, pgCtl, ['stop', '-D', dataDir, '-m', 'immediate', '-w', '-t', '15'], tmpDir, 20_000);
            } catch {
              killPostmaster(dataDir, 'SIGQUIT');
            }
          }
          await rm(tmpDir, { recursive: true, force: true });
          live.delete(tmpDir);
        })();
        return stopping;
      },
    };
    return cluster;
  } catch (err) {
    if (registered) live.delete(tmpDir);
    stopSync(info);
    throw err;
  }
}

async function findExecutable(cmd: string, extraDirs: string[]): Promise<string | undefined> {
  for (const dir of [...(process.env.PATH ?? '').split(path.delimiter), ...extraDirs]) {
    if (dir && (await isExecutable(path.join(dir, cmd)))) return path.join(dir, cmd);
  }
  return undefined;
}
