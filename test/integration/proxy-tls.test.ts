/**
 * TLS on both sides of Warden: clients negotiating TLS with Warden (SSLRequest
 * and direct TLS, channel binding, `require`), and Warden negotiating TLS with
 * its upstreams (`tls: require | verify-full`, `ca`).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import net from 'node:net';
import tls from 'node:tls';
import fs from 'node:fs';
import crypto from 'node:crypto';
import pg from 'pg';
import { ScramClientExchange, tlsServerEndPointBinding } from '../../src/auth/index.js';
import { startWarden, type Warden } from '../../src/app.js';
import { ProxyServer } from '../../src/proxy/connection/server.js';
import { parseConfig } from '../../src/config/load.js';
import type { PgCluster } from '../../src/embedded/pg-cluster.js';
import { silentLogger, createLogger } from '../../src/log/logger.js';
import { makeTestCerts, type TestCerts } from '../helpers/certs.js';
import { psqlInterrupted, run, type RunResult } from '../helpers/psql.js';
import { PASSWORDS, SVC_PASSWORD, startCluster } from '../helpers/warden-env.js';

import { SSL_REQUEST, Wire, message, parseErrorFields, saslInitial, startupPacket, type ErrorFields, type Msg } from '../helpers/raw-wire.js';

function tcpConnect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.removeAllListeners('error');
      resolve(s);
    });
    s.once('error', reject);
  });
}

function tlsHandshake(opts: tls.ConnectionOptions): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const t = tls.connect({ rejectUnauthorized: false, ...opts });
    t.once('secureConnect', () => {
      t.removeAllListeners('error');
      resolve(t);
    });
    t.once('error', reject);
  });
}

/** SSLRequest, 'S', TLS handshake: returns the raw TCP socket and the TLS socket on it. */
async function sslRequest(port: number): Promise<{ raw: net.Socket; tls: tls.TLSSocket }> {
  const raw = await tcpConnect(port);
  const answer = await new Promise<string>((resolve) => {
    raw.once('data', (d: Buffer) => resolve(d.toString('latin1')));
    raw.write(SSL_REQUEST);
  });
  expect(answer).toBe('S');
  raw.pause();
  return { raw, tls: await tlsHandshake({ socket: raw }) };
}

function authOf(m: Msg): { code: number; data: Buffer } {
  if (m.type === 'E') throw Object.assign(new Error('server error'), { fields: parseErrorFields(m.body) });
  expect(m.type).toBe('R');
  return { code: m.body.readInt32BE(0), data: m.body.subarray(4) };
}

const mechanismsOf = (m: Msg): string[] => {
  const a = authOf(m);
  expect(a.code).toBe(10);
  return a.data.toString('utf8').split('\0').filter(Boolean);
};

/**
 * SCRAM by hand on `wire` (startup already sent, AuthenticationSASL read). Returns the
 * error Warden answered with, or undefined after ReadyForQuery.
 */
async function scram(wire: Wire, mechanisms: string[], client: ScramClientExchange): Promise<ErrorFields | undefined> {
  const first = client.clientFirst(mechanisms);
  wire.write(saslInitial(first.mechanism, first.data));
  try {
    const cont = authOf(await wire.read());
    expect(cont.code).toBe(11);
    wire.write(message('p', client.handleServerFirst(cont.data)));
    const fin = authOf(await wire.read());
    expect(fin.code).toBe(12);
    client.handleServerFinal(fin.data);
    for (;;) {
      const m = await wire.read();
      if (m.type === 'E') return parseErrorFields(m.body);
      if (m.type === 'Z') return undefined;
    }
  } catch (err) {
    const fields = (err as { fields?: ErrorFields }).fields;
    if (fields) return fields;
    throw err;
  }
}

async function simpleQuery(wire: Wire, sql: string): Promise<string[]> {
  wire.write(message('Q', Buffer.from(sql + '\0')));
  const values: string[] = [];
  for (;;) {
    const m = await wire.read();
    if (m.type === 'D') values.push(m.body.toString('utf8', 6));
    if (m.type === 'E') throw new Error(parseErrorFields(m.body).M);
    if (m.type === 'Z') return values;
  }
}

// ---- psql ----------------------------------------------------------------------------------------

const cleanEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('PG')));

function psql(conninfo: string, args: string[], password: string = PASSWORDS.alice): Promise<RunResult> {
  return run('psql', ['-X', '-At', '-v', 'ON_ERROR_STOP=1', '-d', conninfo, ...args], { ...cleanEnv, PGPASSWORD: password, PGCONNECT_TIMEOUT: '10' });
}

const psqlMajor = Number(/(\d+)/.exec((await run('psql', ['--version'], cleanEnv)).out)?.[1] ?? 0);

// ---- a fake upstream that speaks just enough TLS ---------------------------------------------------

interface Fake {
  port: number;
  close(): void;
}

/**
 * Answers an SSLRequest with 'S' and a TLS handshake with `cert`, then refuses the startup
 * with FATAL 53300 (a class Warden relays verbatim: proof that TLS with it succeeded). Without
 * `cert` it accepts connections and never says anything (a black hole).
 */
async function fakeUpstream(cert?: { cert: string; key: string }): Promise<Fake> {
  const socks = new Set<net.Socket>();
  const server = net.createServer((sock) => {
    socks.add(sock);
    sock.on('close', () => socks.delete(sock));
    sock.on('error', () => undefined);
    if (!cert) return;
    sock.once('data', () => {
      sock.write('S');
      const t = new tls.TLSSocket(sock, { isServer: true, cert: fs.readFileSync(cert.cert), key: fs.readFileSync(cert.key) });
      t.on('error', () => undefined);
      t.once('data', () => {
        const body = Buffer.from('SFATAL\0C53300\0Msorry, too many clients already (fake upstream)\0\0');
        t.end(message('E', body));
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    close() {
      for (const s of socks) s.destroy();
      server.close();
    },
  };
}

// ---- environment -------------------------------------------------------------------------------

const log = process.env.WARDEN_TEST_LOG ? createLogger('debug') : silentLogger();
let certs: TestCerts;
let plainCluster: PgCluster;
let sslCluster: PgCluster;
let hole: Fake;
let fakeLocalhostOnly: Fake;
let fakeOtherHost: Fake;
let wOpt: Warden; // listen.tls, require: false
let wReq: Warden; // listen.tls, require: true
let wUp: Warden; // TLS towards upstreams
const wardens: Warden[] = [];

const IDENTITIES = `identities:
  - name: alice
    password: ${PASSWORDS.alice}
  - name: bob
    kind: service
    password: ${PASSWORDS.bob}
`;
const svc = (port: number, host = '127.0.0.1') => `postgres://warden_svc:${SVC_PASSWORD}@${host}:${port}/app`;

async function warden(yaml: string): Promise<Warden> {
  const w = await startWarden({ config: parseConfig(yaml, '/tmp/warden-tls-test.yaml', {}), log });
  wardens.push(w);
  return w;
}

beforeAll(async () => {
  certs = await makeTestCerts();
  const pgFiles = await certs.forPostgres();
  [plainCluster, sslCluster] = await Promise.all([
    startCluster(),
    startCluster({ ssl: 'on', ssl_cert_file: pgFiles.cert, ssl_key_file: pgFiles.key }),
  ]);
  hole = await fakeUpstream();
  fakeLocalhostOnly = await fakeUpstream(certs.localhostOnly);
  fakeOtherHost = await fakeUpstream(certs.otherHost);
  const listenTls = (require: boolean) =>
    `listen: { host: 127.0.0.1, port: 0, tls: { cert: ${certs.serverCert}, key: ${certs.serverKey}, require: ${require} } }`;
  wOpt = await warden(`version: 1
${listenTls(false)}
databases:
  app: { upstream: "${svc(plainCluster.port)}" }
  hole: { upstream: "${svc(hole.port)}" }
${IDENTITIES}`);
  wReq = await warden(`version: 1
${listenTls(true)}
databases:
  app: { upstream: "${svc(plainCluster.port)}" }
${IDENTITIES}`);
  wUp = await warden(`version: 1
listen: { host: 127.0.0.1, port: 0 }
databases:
  up_require: { upstream: "${svc(sslCluster.port)}", tls: require }
  up_disable: { upstream: "${svc(sslCluster.port)}", tls: disable }
  up_verify: { upstream: "${svc(sslCluster.port)}", tls: verify-full, ca: ${certs.ca} }
  up_verify_name: { upstream: "${svc(sslCluster.port, 'localhost')}", tls: verify-full, ca: ${certs.ca} }
  up_wrong_ca: { upstream: "${svc(sslCluster.port)}", tls: verify-full, ca: ${certs.otherCa} }
  up_system_ca: { upstream: "${svc(sslCluster.port)}", tls: verify-full }
  up_nossl: { upstream: "${svc(plainCluster.port)}", tls: require }
  fake_ip: { upstream: "${svc(fakeLocalhostOnly.port)}", tls: verify-full, ca: ${certs.ca} }
  fake_other_host: { upstream: "${svc(fakeOtherHost.port, 'localhost')}", tls: verify-full, ca: ${certs.ca} }
  fake_other_host_require: { upstream: "${svc(fakeOtherHost.port, 'localhost')}", tls: require }
${IDENTITIES}`);
});

afterAll(async () => {
  for (const w of wardens) await w.close();
  hole?.close();
  fakeLocalhostOnly?.close();
  fakeOtherHost?.close();
  await Promise.all([plainCluster?.stop(), sslCluster?.stop()]);
  await certs?.cleanup();
});

const conn = (w: Warden, extra: string, db = 'app') => `host=127.0.0.1 port=${w.port} user=alice dbname=${db} ${extra}`;
const pgConfig = (w: Warden, extra: pg.ClientConfig = {}, db = 'app'): pg.ClientConfig => ({
  host: '127.0.0.1',
  port: w.port,
  user: 'alice',
  password: PASSWORDS.alice,
  database: db,
  ...extra,
});
const streamOf = (c: pg.Client) => (c as unknown as { connection: { stream: net.Socket | tls.TLSSocket } }).connection.stream;

// ---- client side ---------------------------------------------------------------------------------

describe('clients → Warden (listen.tls, require: false)', () => {
  it('psql sslmode=require gets an SSL connection', async () => {
    const r = await psql(conn(wOpt, 'sslmode=require'), ['-c', '\\conninfo', '-c', 'select 6 * 7']);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toContain('SSL connection');
    expect(r.out).toMatch(/protocol: TLSv1\.[23]/);
    expect(r.out.trim().split('\n').at(-1)).toBe('42');
  });

  it('psql sslmode=verify-full with the test CA and host name localhost', async () => {
    const r = await psql(conn(wOpt, `sslmode=verify-full sslrootcert=${certs.ca}`).replace('host=127.0.0.1', 'host=localhost hostaddr=127.0.0.1'), [
      '-c',
      '\\conninfo',
      '-c',
      'select current_user',
    ]);
    expect(r.err).toBe('');
    expect(r.out).toContain('SSL connection');
    expect(r.out.trim().split('\n').at(-1)).toBe('warden_svc');
  });

  it('psql sslmode=verify-full with an unrelated CA refuses Warden (it presents the configured certificate)', async () => {
    const r = await psql(conn(wOpt, `sslmode=verify-full sslrootcert=${certs.otherCa}`).replace('host=127.0.0.1', 'host=localhost hostaddr=127.0.0.1'), ['-c', 'select 1']);
    expect(r.code).not.toBe(0);
    expect(r.err).toMatch(/certificate verify failed/);
  });

  it('psql channel_binding=require (SCRAM-SHA-256-PLUS) works', async () => {
    const r = await psql(conn(wOpt, 'sslmode=require channel_binding=require'), ['-c', '\\conninfo', '-c', 'select 1']);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toContain('SSL connection');
  });

  it('refusals after the TLS handshake arrive through TLS: wrong password, unknown database', async () => {
    const r = await psql(conn(wOpt, 'sslmode=require'), ['-c', 'select 1'], 'wrong-password');
    expect(r.code).not.toBe(0);
    expect(r.err).toContain('password authentication failed for user "alice"');
    const c = new pg.Client(pgConfig(wOpt, { ssl: { rejectUnauthorized: false }, password: 'wrong' }));
    await expect(c.connect()).rejects.toMatchObject({ code: '28P01', severity: 'FATAL' });
    const d = new pg.Client(pgConfig(wOpt, { ssl: { rejectUnauthorized: false } }, 'nope'));
    await expect(d.connect()).rejects.toMatchObject({ code: '3D000', message: 'database "nope" does not exist' });
  });

  it('psql sslmode=disable still works when TLS is not required (and is not encrypted)', async () => {
    const r = await psql(conn(wOpt, 'sslmode=disable'), ['-c', '\\conninfo', '-c', 'select 1']);
    expect(r.err).toBe('');
    expect(r.out).not.toContain('SSL connection');
    expect(r.out.trim().split('\n').at(-1)).toBe('1');
  });

  it('pg with ssl: the client stream is encrypted; without: it is not', async () => {
    const a = new pg.Client(pgConfig(wOpt, { ssl: { rejectUnauthorized: false } }));
    const b = new pg.Client(pgConfig(wOpt));
    await a.connect();
    await b.connect();
    try {
      const sa = streamOf(a) as tls.TLSSocket;
      expect(sa.encrypted).toBe(true);
      expect(sa.getProtocol()).toMatch(/^TLSv1\.[23]$/);
      expect((streamOf(b) as tls.TLSSocket).encrypted).toBeUndefined();
      expect((await a.query('select 1 as x')).rows).toEqual([{ x: 1 }]);
      expect((await b.query('select 1 as x')).rows).toEqual([{ x: 1 }]);
    } finally {
      await a.end();
      await b.end();
    }
  });

  it('pg verifies Warden against the test CA by IP address, and uses channel binding', async () => {
    const c = new pg.Client(pgConfig(wOpt, { ssl: { ca: fs.readFileSync(certs.ca, 'utf8') }, enableChannelBinding: true }));
    await c.connect();
    try {
      expect((streamOf(c) as tls.TLSSocket).authorized).toBe(true);
      expect((await c.query('select 2 as x')).rows).toEqual([{ x: 2 }]);
    } finally {
      await c.end();
    }
  });

  it('offers SCRAM-SHA-256-PLUS on TLS only', async () => {
    const plain = new Wire(await tcpConnect(wOpt.port));
    plain.write(startupPacket({ user: 'alice', database: 'app' }));
    expect(mechanismsOf(await plain.read())).toEqual(['SCRAM-SHA-256']);
    plain.sock.destroy();
    const { tls: t } = await sslRequest(wOpt.port);
    const enc = new Wire(t);
    enc.write(startupPacket({ user: 'alice', database: 'app' }));
    expect(mechanismsOf(await enc.read()).sort()).toEqual(['SCRAM-SHA-256', 'SCRAM-SHA-256-PLUS']);
    t.destroy();
  });

  it('SCRAM-SHA-256-PLUS with the right certificate hash logs in; with a wrong one it is refused', async () => {
    const good = await sslRequest(wOpt.port);
    const gw = new Wire(good.tls);
    gw.write(startupPacket({ user: 'alice', database: 'app' }));
    const binding = tlsServerEndPointBinding(good.tls.getPeerCertificate().raw);
    const ok = await scram(gw, mechanismsOf(await gw.read()), new ScramClientExchange({ password: PASSWORDS.alice, channelBinding: binding, requireChannelBinding: true }));
    expect(ok).toBeUndefined();
    expect(await simpleQuery(gw, 'select 1')).toEqual(['1']);
    good.tls.destroy();

    const bad = await sslRequest(wOpt.port);
    const bw = new Wire(bad.tls);
    bw.write(startupPacket({ user: 'alice', database: 'app' }));
    const otherDer = new crypto.X509Certificate(fs.readFileSync(certs.otherCa)).raw;
    const err = await scram(bw, mechanismsOf(await bw.read()), new ScramClientExchange({ password: PASSWORDS.alice, channelBinding: tlsServerEndPointBinding(otherDer), requireChannelBinding: true }));
    expect(err).toMatchObject({ S: 'FATAL' });
    expect(['28P01', '28000', '08P01']).toContain(err!.C);
    expect(await bw.closedWithin()).toBe(true);
  });

  it("a client that claims the server cannot bind ('y' flag) while Warden offers -PLUS is refused (downgrade)", async () => {
    const { tls: t } = await sslRequest(wOpt.port);
    const w = new Wire(t);
    w.write(startupPacket({ user: 'alice', database: 'app' }));
    mechanismsOf(await w.read());
    const binding = tlsServerEndPointBinding(t.getPeerCertificate().raw);
    // Pretend only SCRAM-SHA-256 was offered: the client then sends gs2 flag 'y'.
    const err = await scram(w, ['SCRAM-SHA-256'], new ScramClientExchange({ password: PASSWORDS.alice, channelBinding: binding }));
    expect(err).toMatchObject({ S: 'FATAL' });
    expect(await w.closedWithin()).toBe(true);
  });

  it('plaintext sent right after the SSLRequest is refused (CVE-2021-23214)', async () => {
    const raw = await tcpConnect(wOpt.port);
    const w = new Wire(raw);
    w.write(Buffer.concat([SSL_REQUEST, startupPacket({ user: 'alice', database: 'app' })]));
    const m = await w.read();
    expect(m.type).toBe('E');
    expect(parseErrorFields(m.body)).toMatchObject({ S: 'FATAL', C: '08P01' });
    expect(await w.closedWithin()).toBe(true);
  });

  it.skipIf(psqlMajor < 17)('psql sslnegotiation=direct works (libpq 17+)', async () => {
    const r = await psql(conn(wOpt, 'sslmode=require sslnegotiation=direct'), ['-c', '\\conninfo']);
    expect(r.err).toBe('');
    expect(r.out).toContain('SSL connection');
  });

  it('direct TLS with the postgresql ALPN: the startup gets AuthenticationSASL, and the session works', async () => {
    // (psql here is libpq < 17, which has no sslnegotiation=direct: Node speaks it instead.)
    const t = await tlsHandshake({ host: '127.0.0.1', port: wOpt.port, ALPNProtocols: ['postgresql'], ca: fs.readFileSync(certs.ca), rejectUnauthorized: true });
    expect(t.alpnProtocol).toBe('postgresql');
    const w = new Wire(t);
    w.write(startupPacket({ user: 'alice', database: 'app' }));
    const first = await w.read();
    expect(first.type).toBe('R');
    expect(first.body.readInt32BE(0)).toBe(10);
    const mechs = mechanismsOf(first);
    expect(mechs).toContain('SCRAM-SHA-256-PLUS');
    const binding = tlsServerEndPointBinding(t.getPeerCertificate().raw);
    expect(await scram(w, mechs, new ScramClientExchange({ password: PASSWORDS.alice, channelBinding: binding, requireChannelBinding: true }))).toBeUndefined();
    expect(await simpleQuery(w, "select 'direct'")).toEqual(['direct']);
    t.destroy();
  });

  it('direct TLS without ALPN: the connection is closed without a PostgreSQL answer', async () => {
    const t0 = Date.now();
    const raw = await tcpConnect(wOpt.port);
    const t = tls.connect({ socket: raw, rejectUnauthorized: false }); // no ALPNProtocols
    const w = new Wire(t);
    let handshake = false;
    await new Promise<void>((resolve) => {
      t.once('secureConnect', () => {
        handshake = true;
        resolve();
      });
      t.once('close', () => resolve());
    });
    if (!w.closed) w.write(startupPacket({ user: 'alice', database: 'app' }));
    expect(await w.closedWithin()).toBe(true);
    expect(w.received).toBe(0);
    // Refused right after the handshake (Warden saw the missing ALPN), not by some timeout.
    expect(handshake).toBe(true);
    expect(Date.now() - t0).toBeLessThan(3_000);
  });
});

describe('clients → Warden (listen.tls, require: true)', () => {
  it('psql sslmode=disable is refused with 28000', async () => {
    const r = await psql(conn(wReq, 'sslmode=disable'), ['-c', 'select 1']);
    expect(r.code).not.toBe(0);
    expect(r.err).toContain('Warden requires an encrypted connection');
  });

  it('pg without ssl is refused with 28000', async () => {
    const c = new pg.Client(pgConfig(wReq));
    await expect(c.connect()).rejects.toMatchObject({ code: '28000', severity: 'FATAL' });
  });

  it('psql sslmode=require works', async () => {
    const r = await psql(conn(wReq, 'sslmode=require'), ['-c', '\\conninfo', '-c', 'select current_user']);
    expect(r.err).toBe('');
    expect(r.out).toContain('SSL connection');
    expect(r.out.trim().split('\n').at(-1)).toBe('warden_svc');
  });

  it('pg with ssl works', async () => {
    const c = new pg.Client(pgConfig(wReq, { ssl: { rejectUnauthorized: false } }));
    await c.connect();
    try {
      expect((streamOf(c) as tls.TLSSocket).encrypted).toBe(true);
      expect((await c.query('select 3 as x')).rows).toEqual([{ x: 3 }]);
    } finally {
      await c.end();
    }
  });

  it('direct TLS counts as encrypted', async () => {
    const t = await tlsHandshake({ host: '127.0.0.1', port: wReq.port, ALPNProtocols: ['postgresql'] });
    const w = new Wire(t);
    w.write(startupPacket({ user: 'alice', database: 'app' }));
    expect(mechanismsOf(await w.read())).toContain('SCRAM-SHA-256');
    t.destroy();
  });
});

describe('client resilience with TLS', () => {
  it('a TLS client that resets its connection while Warden connects upstream does not crash Warden', async () => {
    const { raw, tls: t } = await sslRequest(wOpt.port);
    const w = new Wire(t);
    w.write(startupPacket({ user: 'alice', database: 'hole' }));
    const mechs = mechanismsOf(await w.read());
    const client = new ScramClientExchange({ password: PASSWORDS.alice });
    const first = client.clientFirst(mechs);
    w.write(saslInitial(first.mechanism, first.data));
    w.write(message('p', client.handleServerFirst(authOf(await w.read()).data)));
    expect(authOf(await w.read()).code).toBe(12);
    expect(authOf(await w.read()).code).toBe(0); // AuthenticationOk: Warden now waits on the black hole
    raw.resetAndDestroy();
    await new Promise((r) => setTimeout(r, 300));
    const c = new pg.Client(pgConfig(wOpt, { ssl: { rejectUnauthorized: false } }));
    await c.connect();
    expect((await c.query('select 1 as x')).rows).toEqual([{ x: 1 }]);
    await c.end();
  });
});

describe('authentication timeout with TLS', () => {
  it('a client that completes the TLS handshake and then sends nothing is disconnected', async () => {
    const yaml = `version: 1
listen: { host: 127.0.0.1, port: 0, tls: { cert: ${certs.serverCert}, key: ${certs.serverKey}, require: false } }
databases:
  app: { upstream: "${svc(plainCluster.port)}" }
${IDENTITIES}`;
    const proxy = new ProxyServer({ config: parseConfig(yaml, '/tmp/warden-tls-test.yaml', {}), log, authenticationTimeoutMs: 600 });
    const { port } = await proxy.listen();
    try {
      const viaRequest = new Wire((await sslRequest(port)).tls);
      const direct = new Wire(await tlsHandshake({ host: '127.0.0.1', port, ALPNProtocols: ['postgresql'] }));
      expect(await viaRequest.closedWithin(4_000)).toBe(true);
      expect(await direct.closedWithin(4_000)).toBe(true);
    } finally {
      await proxy.close();
    }
  });
});

// ---- upstream side -------------------------------------------------------------------------------

async function upstreamSsl(db: string): Promise<boolean> {
  const c = new pg.Client(pgConfig(wUp, {}, db));
  await c.connect();
  try {
    return (await c.query('select ssl from pg_stat_ssl where pid = pg_backend_pid()')).rows[0].ssl;
  } finally {
    await c.end();
  }
}

async function connectError(db: string): Promise<pg.DatabaseError> {
  const c = new pg.Client(pgConfig(wUp, {}, db));
  try {
    await c.connect();
  } catch (err) {
    return err as pg.DatabaseError;
  }
  await c.end();
  throw new Error(`connecting to ${db} through Warden succeeded`);
}

function expectUpstreamFailure(err: pg.DatabaseError, db: string): void {
  expect(err.code).toBe('08006');
  expect(err.severity).toBe('FATAL');
  expect(err.message).toContain(`could not connect to database "${db}"`);
  const all = JSON.stringify({ ...err, message: err.message });
  expect(all).not.toContain(SVC_PASSWORD);
  expect(all).not.toContain('warden_svc');
}

describe('Warden → upstream TLS', () => {
  it('tls: require encrypts the upstream connection', async () => {
    expect(await upstreamSsl('up_require')).toBe(true);
  });

  it('tls: disable does not (control)', async () => {
    expect(await upstreamSsl('up_disable')).toBe(false);
  });

  it('tls: verify-full with the test CA (certificate for IP 127.0.0.1) works', async () => {
    expect(await upstreamSsl('up_verify')).toBe(true);
  });

  it('tls: verify-full with the test CA, upstream named localhost, works', async () => {
    expect(await upstreamSsl('up_verify_name')).toBe(true);
  });

  it('tls: verify-full with an unrelated CA → 08006 naming the database, no credentials', async () => {
    expectUpstreamFailure(await connectError('up_wrong_ca'), 'up_wrong_ca');
  });

  it('tls: verify-full without ca uses the system CAs, which do not know the test CA → 08006', async () => {
    expectUpstreamFailure(await connectError('up_system_ca'), 'up_system_ca');
  });

  it('tls: verify-full checks the IP address: a certificate for localhost only does not do for 127.0.0.1', async () => {
    const err = await connectError('fake_ip');
    expectUpstreamFailure(err, 'fake_ip');
  });

  it('tls: verify-full checks the host name; tls: require does not', async () => {
    expectUpstreamFailure(await connectError('fake_other_host'), 'fake_other_host');
    // With require, TLS succeeds and the fake upstream's own FATAL comes through.
    const err = await connectError('fake_other_host_require');
    expect(err.code).toBe('53300');
    expect(err.message).toContain('fake upstream');
  });

  it('tls: require against a cluster without ssl → 08006', async () => {
    const err = await connectError('up_nossl');
    expectUpstreamFailure(err, 'up_nossl');
    expect(err.message).toMatch(/does not accept TLS/);
  });

  it('a cancel request reaches a TLS upstream', async () => {
    const { err, elapsedMs } = await psqlInterrupted(['-d', conn(wUp, 'sslmode=disable', 'up_require'), '-c', 'select pg_sleep(30)'], {
      ...cleanEnv,
      PGPASSWORD: PASSWORDS.alice,
    });
    expect(err).toContain('canceling statement due to user request');
    expect(elapsedMs).toBeLessThan(5000);
  });
});
