/**
 * Connection limits: `listen.max_connections` (default from the open-file limit, which Warden
 * raises to its hard limit at start) and `identities[].max_connections`. Beyond them a client
 * gets 53300 at once, and the sessions already running are not affected.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { baseYaml, PASSWORDS, startCluster, startEnv, SVC_PASSWORD, type TestEnv } from '../helpers/warden-env.js';
import type { PgCluster } from '../../src/embedded/pg-cluster.js';
import { runPsql } from '../helpers/psql.js';
import { BIN, writeTempConfig } from '../helpers/warden-process.js';
import { freePort } from '../../src/embedded/free-port.js';
import { defaultMaxConnections, FDS_PER_CONNECTION, RESERVED_FDS } from '../../src/util/fd-limit.js';

let cluster: PgCluster;
let env: TestEnv;

beforeAll(async () => {
  cluster = await startCluster();
  env = await startEnv({
    cluster,
    yaml: (p) =>
      baseYaml(p)
        .replace('listen: { host: 127.0.0.1, port: 0 }', 'listen: { host: 127.0.0.1, port: 0, max_connections: 6 }')
        .replace('  - name: alice\n    kind: human\n', '  - name: alice\n    kind: human\n    max_connections: 2\n'),
  });
});

afterAll(async () => {
  await env?.stop();
});

async function connect(identity: keyof typeof PASSWORDS, port = env.warden.port): Promise<pg.Client> {
  const c = new pg.Client({ host: '127.0.0.1', port, user: identity, password: PASSWORDS[identity], database: 'app', connectionTimeoutMillis: 5_000 });
  c.on('error', () => undefined);
  await c.connect();
  return c;
}

async function refusal(identity: keyof typeof PASSWORDS, port = env.warden.port): Promise<{ code?: string; message: string; ms: number }> {
  const t0 = Date.now();
  try {
    const c = await connect(identity, port);
    await c.end();
    return { message: 'connected', ms: Date.now() - t0 };
  } catch (err) {
    return { code: (err as { code?: string }).code, message: (err as Error).message, ms: Date.now() - t0 };
  }
}

describe('per identity', () => {
  it('a third session of alice (max_connections: 2) gets 53300 at once; bob still logs in; a freed slot is reused', async () => {
    const a1 = await connect('alice');
    const a2 = await connect('alice');
    const r = await refusal('alice');
    expect(r.code).toBe('53300');
    expect(r.message).toBe('too many connections for identity "alice"');
    expect(r.ms).toBeLessThan(2_000);
    const b = await connect('bob');
    expect((await b.query('select 1 as x')).rows[0].x).toBe(1);
    await a1.end();
    await new Promise((res) => setTimeout(res, 200));
    const a3 = await connect('alice');
    expect((await a3.query('select 2 as x')).rows[0].x).toBe(2);
    expect((await a2.query('select 3 as x')).rows[0].x).toBe(3);
    for (const c of [a2, a3, b]) await c.end();
  });
});

describe('listen.max_connections', () => {
  it('beyond the cap (6): 53300 at once for pg and psql, the open sessions carry on', async () => {
    await new Promise((res) => setTimeout(res, 200));
    const open = [await connect('bob'), await connect('bob'), await connect('agent'), await connect('agent'), await connect('bob'), await connect('alice')];
    const r = await refusal('bob');
    expect(r.code).toBe('53300');
    expect(r.message).toBe('sorry, too many clients already');
    expect(r.ms).toBeLessThan(2_000);
    const p = await runPsql({ port: env.warden.port, user: 'bob', password: PASSWORDS.bob, database: 'app', args: ['-c', 'select 1'] });
    expect(p.code).not.toBe(0);
    expect(p.err).toContain('sorry, too many clients already');
    for (const [i, c] of open.entries()) expect((await c.query(`select ${i} as x`)).rows[0].x).toBe(i);
    await open[0]!.end();
    await new Promise((res) => setTimeout(res, 200));
    const again = await connect('bob');
    await again.end();
    for (const c of open.slice(1)) await c.end();
  });

  it('a half-open flood (TCP connections that never send a startup packet) counts too', async () => {
    await new Promise((res) => setTimeout(res, 200));
    const socks: net.Socket[] = [];
    for (let i = 0; i < 6; i++) {
      const s = net.connect({ host: '127.0.0.1', port: env.warden.port });
      s.on('error', () => undefined);
      await new Promise((res) => s.once('connect', res));
      socks.push(s);
    }
    await new Promise((res) => setTimeout(res, 200));
    expect((await refusal('bob')).code).toBe('53300');
    for (const s of socks) s.destroy();
    await new Promise((res) => setTimeout(res, 300));
    const c = await connect('bob');
    await c.end();
  });
});

describe('the default, from the open-file limit', () => {
  it('is the limit less what Warden keeps back, divided by the descriptors a connection may take', () => {
    expect(defaultMaxConnections({ soft: 1024, hard: 4096 })).toBe(Math.floor((1024 - RESERVED_FDS) / FDS_PER_CONNECTION));
    expect(defaultMaxConnections({ soft: 100, hard: 100 })).toBe(1);
    expect(defaultMaxConnections(null)).toBeGreaterThan(0);
  });

  it('a Warden process with 300 descriptors: refuses clearly with 53300 instead of running out, and keeps serving', async () => {
    const port = await freePort();
    const yaml = baseYaml(cluster.port).replace('listen: { host: 127.0.0.1, port: 0 }', `listen: { host: 127.0.0.1, port: ${port} }`);
    const file = writeTempConfig(yaml);
    const child: ChildProcess = spawn('prlimit', ['--nofile=300:300', process.execPath, BIN, 'start', '--config', file, '--log-level', 'info'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    child.stderr!.on('data', (d: Buffer) => (log += d.toString()));
    try {
      for (let i = 0; i < 100 && !log.includes('warden listening'); i++) await new Promise((res) => setTimeout(res, 100));
      const cap = defaultMaxConnections({ soft: 300, hard: 300 });
      expect(JSON.parse(log.split('\n').find((l) => l.includes('warden listening'))!).maxConnections).toBe(cap);
      const sessions: pg.Client[] = [];
      for (let i = 0; i < cap; i++) sessions.push(await connect('bob', port));
      // Many more than the cap, at once: each refused quickly, none hangs.
      const extra = await Promise.all(Array.from({ length: 40 }, () => refusal('agent', port)));
      for (const r of extra) {
        expect(r.code).toBe('53300');
        expect(r.ms).toBeLessThan(3_000);
      }
      for (const [i, c] of sessions.entries()) expect((await c.query(`select ${i} as x`)).rows[0].x).toBe(i);
      for (const c of sessions) await c.end();
      await new Promise((res) => setTimeout(res, 300));
      const after = await connect('bob', port);
      await after.end();
    } finally {
      child.kill('SIGTERM');
      await new Promise((res) => child.once('exit', res));
    }
  });
});

void SVC_PASSWORD;
