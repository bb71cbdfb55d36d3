/**
 * Hostile and broken clients, spoken to by hand over raw sockets: each gets a
 * FATAL ErrorResponse with the right SQLSTATE and is disconnected, and nobody
 * else notices (a session opened before the bad input keeps working).
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import crypto from 'node:crypto';
import pg from 'pg';
import { ScramClientExchange } from '../../src/auth/index.js';
import { freePort } from '../../src/embedded/pg-cluster.js';
import { ProxyServer } from '../../src/proxy/connection/server.js';
import { FORWARD } from '../../src/contract/statement-hooks.js';
import { startWarden, type Warden } from '../../src/app.js';
import { silentLogger } from '../../src/log/logger.js';
import { PASSWORDS, SVC_PASSWORD, startEnv, type TestEnv } from '../helpers/warden-env.js';

import { Wire, cstr, int16, int32, message, parseErrorFields, startupPacket, type ErrorFields, type Msg } from '../helpers/raw-wire.js';

/** Expect a FATAL ErrorResponse with this SQLSTATE, then the connection closed by Warden. */
async function expectFatal(w: Wire, code: string): Promise<ErrorFields> {
  const e = await w.readError();
  expect(e.S).toBe('FATAL');
  expect(e.C).toBe(code);
  expect(await w.closedWithin()).toBe(true);
  return e;
}

function authCode(m: Msg): number {
  expect(m.type).toBe('R');
  return m.body.readInt32BE(0);
}

function saslMechanisms(m: Msg): string[] {
  expect(authCode(m)).toBe(10);
  return m.body.toString('utf8', 4).split('\0').filter(Boolean);
}

/**
 * Startup + SCRAM-SHA-256 by hand. Returns the Wire positioned after the
 * server's answer to the client-final message (or after ReadyForQuery when `ready`).
 */
async function login(
  port: number,
  user: string,
  password: string,
  database = 'app',
): Promise<{ wire: Wire; serverFirst: string; error?: ErrorFields }> {
  const wire = await Wire.connect(port);
  wire.write(startupPacket({ user, database }));
  const mechs = saslMechanisms(await wire.read());
  const scram = new ScramClientExchange({ password });
  const first = scram.clientFirst(mechs);
  wire.write(message('p', Buffer.concat([cstr(first.mechanism), int32(first.data.length), first.data])));
  const cont = await wire.read();
  if (cont.type === 'E') return { wire, serverFirst: '', error: parseErrorFields(cont.body) };
  expect(authCode(cont)).toBe(11);
  const serverFirst = cont.body.toString('utf8', 4);
  wire.write(message('p', scram.handleServerFirst(cont.body.subarray(4))));
  const fin = await wire.read();
  if (fin.type === 'E') return { wire, serverFirst, error: parseErrorFields(fin.body) };
  expect(authCode(fin)).toBe(12);
  scram.handleServerFinal(fin.body.subarray(4));
  for (;;) {
    const m = await wire.read();
    if (m.type === 'E') return { wire, serverFirst, error: parseErrorFields(m.body) };
    if (m.type === 'Z') return { wire, serverFirst };
  }
}

/** Logged in as alice on `app`, ReadyForQuery received. */
async function session(port = env.warden.port): Promise<Wire> {
  const r = await login(port, 'alice', PASSWORDS.alice);
  expect(r.error).toBeUndefined();
  return r.wire;
}

// ---- environment -------------------------------------------------------------------------------

let env: TestEnv;
/** Same config, with a statement hook that forwards everything (as a policy would, it decodes every statement). */
let hooked: Warden;
let keeper: pg.Client; // opened before any bad input, checked at the very end
let downPort: number;

beforeAll(async () => {
  downPort = await freePort(); // nothing listens there
  env = await startEnv({
    yaml: (p) => `version: 1
listen: { host: 127.0.0.1, port: 0, max_message_size: 1MB }
databases:
  app:
    upstream: postgres://warden_svc:${SVC_PASSWORD}@127.0.0.1:${p}/app
  down:
    upstream: postgres://warden_svc:${SVC_PASSWORD}@127.0.0.1:${downPort}/app
identities:
  - name: alice
    password: ${PASSWORDS.alice}
  - name: bob
    kind: service
    password: ${PASSWORDS.bob}
`,
  });
  hooked = await startWarden({ config: env.config, log: silentLogger(), hooks: { statement: () => FORWARD } });
  keeper = await env.connect();
});

afterEach(() => {
  for (const w of Wire.opened) w.destroy();
  Wire.opened.clear();
});

afterAll(async () => {
  await keeper?.end().catch(() => undefined);
  await hooked?.close();
  await env?.stop();
});

/**
 * Run `bad` while another session (opened before it) is alive, and check that
 * session still answers afterwards.
 */
async function withBystander(bad: () => Promise<void>): Promise<void> {
  const other = await env.connect('bob');
  try {
    await bad();
    expect((await other.query('select 1 as x')).rows).toEqual([{ x: 1 }]);
  } finally {
    await other.end();
  }
}

// ---- startup phase -------------------------------------------------------------------------------

describe('broken startup packets', () => {
  it('a startup packet of length 3 → FATAL 08P01', async () => {
    await withBystander(async () => {
      const w = await Wire.connect(env.warden.port);
      w.write(Buffer.from([0, 0, 0, 3]));
      const e = await expectFatal(w, '08P01');
      expect(e.M).toMatch(/invalid length of startup packet/);
    });
  });

  it('a startup packet of length 20000 → FATAL 08P01', async () => {
    await withBystander(async () => {
      const w = await Wire.connect(env.warden.port);
      const b = Buffer.alloc(64, 0x41);
      b.writeInt32BE(20_000, 0);
      w.write(b);
      const e = await expectFatal(w, '08P01');
      expect(e.M).toMatch(/invalid length of startup packet/);
    });
  });

  it('protocol version 2.0 → FATAL 0A000', async () => {
    await withBystander(async () => {
      const w = await Wire.connect(env.warden.port);
      w.write(startupPacket({ user: 'alice', database: 'app' }, 2 << 16));
      const e = await expectFatal(w, '0A000');
      expect(e.M).toMatch(/unsupported frontend protocol 2\.0/);
    });
  });

  it('a startup packet without a terminator → FATAL 08P01', async () => {
    await withBystander(async () => {
      const w = await Wire.connect(env.warden.port);
      const pkt = startupPacket({ user: 'alice' }).subarray(0, -1);
      pkt.writeInt32BE(pkt.length, 0);
      w.write(pkt);
      await expectFatal(w, '08P01');
    });
  });
});

// ---- authentication ------------------------------------------------------------------------------

describe('authentication failures', () => {
  it('wrong password → FATAL 28P01 password authentication failed for user "alice"', async () => {
    await withBystander(async () => {
      const r = await login(env.warden.port, 'alice', 'not-the-password');
      expect(r.error).toBeDefined();
      expect(r.error!.S).toBe('FATAL');
      expect(r.error!.C).toBe('28P01');
      expect(r.error!.M).toBe('password authentication failed for user "alice"');
      expect(await r.wire.closedWithin()).toBe(true);
    });
  });

  it('an unknown identity gets exactly the analogous error, and a server-first message that looks the same', async () => {
    await withBystander(async () => {
      const known = await login(env.warden.port, 'alice', 'wrong');
      const unknown = await login(env.warden.port, 'mallory', 'wrong');
      const unknownAgain = await login(env.warden.port, 'mallory', 'wrong');
      expect(unknown.error).toBeDefined();
      expect(unknown.error!.S).toBe('FATAL');
      expect(unknown.error!.C).toBe('28P01');
      expect(unknown.error!.M).toBe('password authentication failed for user "mallory"');
      // Same fields, same text modulo the name: nothing says the identity does not exist.
      const normalize = (e: ErrorFields, name: string) => JSON.stringify(e).replaceAll(name, 'NAME');
      expect(normalize(unknown.error!, 'mallory')).toBe(normalize(known.error!, 'alice'));
      // The SCRAM challenge has the same shape and iteration count, with a stable salt per name.
      const attrs = (s: string) => Object.fromEntries(s.split(',').map((kv) => [kv[0], kv.slice(2)]));
      const k = attrs(known.serverFirst);
      const u = attrs(unknown.serverFirst);
      const u2 = attrs(unknownAgain.serverFirst);
      expect(u.i).toBe(k.i);
      expect(Buffer.from(u.s, 'base64').length).toBe(Buffer.from(k.s, 'base64').length);
      expect(u2.s).toBe(u.s);
      expect(await unknown.wire.closedWithin()).toBe(true);
      known.wire.destroy();
      unknownAgain.wire.destroy();
    });
  });

  it('pg reports the wrong password as 28P01 too', async () => {
    const c = new pg.Client({ ...env.client('alice'), password: 'nope' });
    await expect(c.connect()).rejects.toMatchObject({ code: '28P01', severity: 'FATAL', message: 'password authentication failed for user "alice"' });
  });

  it('a startup packet without a user → FATAL 28000', async () => {
    await withBystander(async () => {
      const w = await Wire.connect(env.warden.port);
      w.write(startupPacket({ database: 'app' }));
      await expectFatal(w, '28000');
    });
  });
});

describe('after authentication', () => {
  it('unknown database → FATAL 3D000', async () => {
    await withBystander(async () => {
      const r = await login(env.warden.port, 'alice', PASSWORDS.alice, 'nope');
      expect(r.error).toMatchObject({ S: 'FATAL', C: '3D000', M: 'database "nope" does not exist' });
      expect(await r.wire.closedWithin()).toBe(true);
    });
  });

  it('upstream down → FATAL 08006 naming the database, without URL or credentials', async () => {
    await withBystander(async () => {
      const r = await login(env.warden.port, 'alice', PASSWORDS.alice, 'down');
      expect(r.error).toBeDefined();
      expect(r.error!.S).toBe('FATAL');
      expect(r.error!.C).toBe('08006');
      expect(r.error!.M).toMatch(/^could not connect to database "down"/);
      const all = JSON.stringify(r.error);
      expect(all).not.toContain(SVC_PASSWORD);
      expect(all).not.toContain('warden_svc');
      expect(all).not.toContain('postgres://');
      expect(all).not.toContain(String(downPort));
      expect(await r.wire.closedWithin()).toBe(true);
    });
  });

  it('the raw client can run a query (control for the cases below)', async () => {
    const w = await session();
    w.write(message('Q', cstr('select 41 + 1')));
    const types: string[] = [];
    let row = '';
    for (;;) {
      const m = await w.read();
      types.push(m.type);
      if (m.type === 'D') row = m.body.toString('utf8', 6);
      if (m.type === 'Z') break;
    }
    expect(types).toEqual(['T', 'D', 'C', 'Z']);
    expect(row).toBe('42');
    w.write(message('X'));
    expect(await w.closedWithin()).toBe(true);
  });

  it('a message with length < 4 → FATAL 08P01', async () => {
    await withBystander(async () => {
      const w = await session();
      w.write(Buffer.from([0x51, 0, 0, 0, 2]));
      const e = await expectFatal(w, '08P01');
      expect(e.M).toMatch(/invalid message length/);
    });
  });

  it("an unknown message type ('Z') → FATAL 08P01", async () => {
    await withBystander(async () => {
      const w = await session();
      w.write(message('Z', Buffer.from('I')));
      const e = await expectFatal(w, '08P01');
      expect(e.M).toMatch(/invalid frontend message type/);
    });
  });

  it('a Query just under max_message_size (1MB) works', async () => {
    const c = await env.connect();
    try {
      const n = 1024 * 1024 - 100;
      const r = await c.query(`select length('${'x'.repeat(n)}') as n`);
      expect(r.rows[0].n).toBe(n);
    } finally {
      await c.end();
    }
  });

  it('a Query larger than max_message_size (1MB) → FATAL 08P01 too large', async () => {
    await withBystander(async () => {
      const w = await session();
      w.write(message('Q', cstr(`select '${'y'.repeat(1536 * 1024)}'`)));
      const e = await expectFatal(w, '08P01');
      expect(e.M).toMatch(/too large/);
    });
  });

  it('the upstream backend of a session ended for a protocol violation goes away', async () => {
    const w = await session();
    // Find our backend: the newest one for the service role.
    w.write(message('Q', cstr('select pg_backend_pid()')));
    let pid = 0;
    for (;;) {
      const m = await w.read();
      if (m.type === 'D') pid = Number(m.body.toString('utf8', 6));
      if (m.type === 'Z') break;
    }
    expect(pid).toBeGreaterThan(0);
    w.write(message('Z'));
    await expectFatal(w, '08P01');
    const deadline = Date.now() + 5_000;
    let alive = 1;
    while (Date.now() < deadline) {
      alive = (await env.cluster.query(`select count(*)::int as n from pg_stat_activity where pid = ${pid}`)).rows[0].n;
      if (alive === 0) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(alive).toBe(0);
  });
});

// ---- malformed extended-protocol messages ----------------------------------------------------------

const PARSE_2 = message('P', Buffer.concat([cstr(''), cstr('select $1::int + $2::int'), int16(0)]));
const SYNC = message('S');
const MALFORMED: [name: string, bytes: Buffer, message?: RegExp][] = [
  [
    'a Bind with 2 parameter formats but 1 parameter',
    Buffer.concat([PARSE_2, message('B', Buffer.concat([cstr(''), cstr(''), int16(2), int16(0), int16(0), int16(1), int32(1), Buffer.from('1'), int16(0)])), SYNC]),
    /bind message has 2 parameter formats but 1 parameters/,
  ],
  [
    'a Bind that declares more parameters than it carries',
    Buffer.concat([PARSE_2, message('B', Buffer.concat([cstr(''), cstr(''), int16(0), int16(3), int32(1), Buffer.from('1')])), SYNC]),
  ],
  ['a truncated Parse body', Buffer.concat([message('P', Buffer.from('s1\0select 1')), SYNC])],
  ['a Parse without its parameter-type count', Buffer.concat([message('P', Buffer.concat([cstr('s2'), cstr('select 1')])), SYNC])],
];

describe.each(MALFORMED)('%s', (_name, bytes, text) => {
  it('→ FATAL 08P01 from Warden when a statement hook (policy) needs it decoded', async () => {
    await withBystander(async () => {
      const w = await session(hooked.port);
      w.write(bytes);
      const e = await expectFatal(w, '08P01');
      if (text) expect(e.M).toMatch(text);
    });
  });

  it('→ 08P01 on the relay-only path (no hook); a session left open is still in sync', async () => {
    await withBystander(async () => {
      const w = await session();
      w.write(bytes);
      const e = await w.readError();
      expect(e.C).toBe('08P01');
      if (e.S === 'FATAL') {
        expect(await w.closedWithin()).toBe(true);
        return;
      }
      // PostgreSQL's own check (ERROR): it skips to Sync, and the session goes on.
      expect(e.S).toBe('ERROR');
      for (let m = await w.read(); m.type !== 'Z'; m = await w.read()) expect(m.type).not.toBe('E');
      w.write(message('Q', cstr('select 7')));
      const types: string[] = [];
      for (let m = await w.read(); ; m = await w.read()) {
        types.push(m.type);
        if (m.type === 'Z') break;
      }
      expect(types).toEqual(['T', 'D', 'C', 'Z']);
      w.write(message('X'));
      expect(await w.closedWithin()).toBe(true);
    });
  });
});

// ---- abuse ---------------------------------------------------------------------------------------

describe('abuse', () => {
  it('50 connections sending random bytes at once do not disturb anyone', async () => {
    await withBystander(async () => {
      const junk = await Promise.all(Array.from({ length: 50 }, () => Wire.connect(env.warden.port)));
      const payloads = junk.map(() => crypto.randomBytes(64));
      junk.forEach((w, i) => w.write(payloads[i]));
      // Meanwhile, good clients come and go.
      const good = await Promise.all([env.connect(), env.connect('bob'), env.connect()]);
      for (const c of good) expect((await c.query('select 2 as y')).rows).toEqual([{ y: 2 }]);
      await Promise.all(good.map((c) => c.end()));
      // A junk packet whose "length" is impossible is refused as a protocol violation.
      await Promise.all(
        junk.map(async (w, i) => {
          const len = payloads[i].readInt32BE(0);
          if (len < 8 || len > 10_000) await expectFatal(w, '08P01');
        }),
      );
      for (const w of junk) w.destroy();
    });
  });

  it('a client that connects and sends nothing (or half a packet) does not block others', async () => {
    await withBystander(async () => {
      const silent = await Wire.connect(env.warden.port);
      const half = await Wire.connect(env.warden.port);
      half.write(Buffer.from([0, 0, 0, 100, 0, 3])); // promises 100 bytes, sends 6
      const t0 = Date.now();
      const cs = await Promise.all(Array.from({ length: 4 }, () => env.connect()));
      const rows = await Promise.all(cs.map((c, i) => c.query('select $1::int as i', [i])));
      expect(rows.map((r) => r.rows[0].i)).toEqual([0, 1, 2, 3]);
      await Promise.all(cs.map((c) => c.end()));
      expect(Date.now() - t0).toBeLessThan(5_000);
      // They are still waiting (the authentication timeout is 60 s), not served nor refused.
      expect(silent.closed).toBe(false);
      expect(half.closed).toBe(false);
      expect(silent.unread + half.unread).toBe(0);
      silent.destroy();
      half.destroy();
    });
  });
});

describe('authentication timeout', () => {
  it('silent, half-packet and mid-SCRAM clients are disconnected when it expires; others are not', async () => {
    const proxy = new ProxyServer({ config: env.config, log: silentLogger(), authenticationTimeoutMs: 600 });
    const { port } = await proxy.listen();
    try {
      const silent = await Wire.connect(port);
      const half = await Wire.connect(port);
      half.write(Buffer.from([0, 0, 0, 100, 0, 3]));
      const mid = await Wire.connect(port);
      mid.write(startupPacket({ user: 'alice', database: 'app' }));
      expect(saslMechanisms(await mid.read())).toEqual(['SCRAM-SHA-256']);
      // An authenticated session outlives the timeout.
      const good = new pg.Client({ ...env.client('alice'), port });
      await good.connect();
      const t0 = Date.now();
      expect(await silent.closedWithin(4_000)).toBe(true);
      expect(await half.closedWithin(4_000)).toBe(true);
      expect(await mid.closedWithin(4_000)).toBe(true);
      expect(Date.now() - t0).toBeLessThan(4_000);
      await new Promise((r) => setTimeout(r, 700 - (Date.now() - t0)));
      expect((await good.query('select 5 as five')).rows).toEqual([{ five: 5 }]);
      await good.end();
    } finally {
      await proxy.close();
    }
  });
});

describe('Warden survived', () => {
  it('still accepts new connections, the first session still works, and sessions were cleaned up', async () => {
    expect((await keeper.query('select 1 as x')).rows).toEqual([{ x: 1 }]);
    const c = await env.connect('bob');
    expect((await c.query('select current_user as u')).rows[0].u).toBe('warden_svc');
    await c.end();
    // Only the keeper is left, on both sides of Warden.
    const deadline = Date.now() + 5_000;
    let sessions = -1;
    let backends = -1;
    while (Date.now() < deadline) {
      sessions = env.warden.proxy.sessionCount;
      backends = (await env.cluster.query("select count(*)::int as n from pg_stat_activity where usename = 'warden_svc'")).rows[0].n;
      if (sessions === 1 && backends === 1) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(sessions).toBe(1);
    expect(backends).toBe(1);
  });
});
