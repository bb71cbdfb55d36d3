/**
 * Hostile protocol input, answered the way PostgreSQL answers it and at once:
 * a message type that is invalid once the session has started (a
 * StartupMessage, SSLRequest or CancelRequest sent again, a 0x00 type byte, a
 * PasswordMessage) gets FATAL 08P01 within a second; a repeated SSLRequest or
 * GSSENCRequest during startup is refused like PostgreSQL's
 * ProcessStartupPacket refuses it. Every case is also sent straight to
 * PostgreSQL, and other sessions carry on throughout.
 */
import net from 'node:net';
import tls from 'node:tls';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startWarden, type Warden } from '../../src/app.js';
import { parseConfig } from '../../src/config/load.js';
import { silentLogger } from '../../src/log/logger.js';
import { makeTestCerts, type TestCerts } from '../helpers/certs.js';
import { baseYaml, PASSWORDS, startEnv, SVC_PASSWORD, type TestEnv } from '../helpers/warden-env.js';
import { SSL_REQUEST, Wire, cstr, int32, message, parseErrorFields, startupPacket, type ErrorFields } from '../helpers/raw-wire.js';
import { B, E, P, Q, login, readyN, rowsOf, shapeOf } from '../helpers/raw-batch.js';

const GSSENC_REQUEST = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30]);
const CANCEL_REQUEST = Buffer.concat([int32(16), int32(80877102), int32(12345), int32(67890)]);

let env: TestEnv;
let tlsWarden: Warden;
let certs: TestCerts;
let bystander: pg.Client;

beforeAll(async () => {
  env = await startEnv();
  certs = await makeTestCerts();
  const yaml = baseYaml(env.cluster.port).replace(
    'listen: { host: 127.0.0.1, port: 0 }',
    `listen: { host: 127.0.0.1, port: 0, tls: { cert: ${certs.serverCert}, key: ${certs.serverKey}, require: false } }`,
  );
  tlsWarden = await startWarden({ config: parseConfig(yaml, '/tmp/warden-hostile-tls.yaml', {}), log: silentLogger() });
  bystander = await env.connect('bob');
}, 60_000);

afterEach(async () => {
  for (const w of Wire.opened) w.destroy();
  Wire.opened.clear();
  // Other sessions carry on after every case.
  expect((await bystander.query('SELECT 1 AS x')).rows).toEqual([{ x: 1 }]);
});

afterAll(async () => {
  await bystander?.end().catch(() => undefined);
  await tlsWarden?.close();
  await env?.stop();
  await certs?.cleanup();
});

/** A raw socket that collects every byte until the peer closes. */
class Raw {
  buf = Buffer.alloc(0);
  closed = false;
  private wake: (() => void) | null = null;
  constructor(readonly sock: net.Socket | tls.TLSSocket) {
    sock.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.wake?.();
    });
    sock.on('close', () => {
      this.closed = true;
      this.wake?.();
    });
    sock.on('error', () => undefined);
  }
  static connect(port: number): Promise<Raw> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ host: '127.0.0.1', port }, () => resolve(new Raw(s)));
      s.once('error', reject);
    });
  }
  async until(cond: () => boolean, ms: number): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (!cond()) {
      const left = deadline - Date.now();
      if (left <= 0) return false;
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.wake = () => {
          clearTimeout(t);
          r();
        };
      });
    }
    return true;
  }
  /** Consume one byte (an SSL/GSSENC answer). */
  async byte(): Promise<string> {
    expect(await this.until(() => this.buf.length >= 1, 3_000)).toBe(true);
    const b = String.fromCharCode(this.buf[0]);
    this.buf = this.buf.subarray(1);
    return b;
  }
  /** The ErrorResponse the peer ends with, and how long until it closed. */
  async fatalAndClose(t0: number, ms = 1_000): Promise<{ error: ErrorFields | null; closed: boolean; elapsed: number }> {
    const closed = await this.until(() => this.closed, ms);
    const elapsed = Date.now() - t0;
    let error: ErrorFields | null = null;
    let at = 0;
    while (at + 5 <= this.buf.length) {
      const len = this.buf.readInt32BE(at + 1);
      if (this.buf[at] === 0x45) error = parseErrorFields(this.buf.subarray(at + 5, at + 1 + len));
      at += 1 + len;
    }
    return { error, closed, elapsed };
  }
}

/** After a login (through Warden or straight to PostgreSQL), send `bytes` and see what happens within a second. */
async function afterLogin(port: number, direct: boolean, bytes: Buffer): Promise<{ error: ErrorFields | null; closed: boolean; elapsed: number }> {
  const w = direct ? await login(port, 'warden_svc', SVC_PASSWORD) : await login(port, 'alice', PASSWORDS.alice);
  const t0 = Date.now();
  w.write(bytes);
  const deadline = t0 + 1_000;
  let error: ErrorFields | null = null;
  for (;;) {
    const left = deadline - Date.now();
    if (left <= 0) break;
    try {
      const m = await w.read(left);
      if (m.type === 'E') error = parseErrorFields(m.body);
    } catch {
      break;
    }
  }
  const closed = await w.closedWithin(Math.max(1, deadline - Date.now()));
  return { error, closed, elapsed: Date.now() - t0 };
}

describe('after authentication: a message type that is invalid now → FATAL 08P01 at once', () => {
  const cases: [string, Buffer][] = [
    ['a StartupMessage', startupPacket({ user: 'alice', database: 'app' })],
    ['a lone 0x00 type byte', Buffer.from([0])],
    ['an SSLRequest', SSL_REQUEST],
    ['a CancelRequest', CANCEL_REQUEST],
    ['a PasswordMessage', message('p', cstr('secret'))],
    ["a 'Z' message", message('Z', Buffer.from('I'))],
  ];
  for (const [what, bytes] of cases) {
    it(`${what}: FATAL 08P01 within 1 s, like PostgreSQL`, async () => {
      const viaPg = await afterLogin(env.cluster.port, true, bytes);
      const viaWarden = await afterLogin(env.warden.port, false, bytes);
      expect(viaWarden.error?.S).toBe('FATAL');
      expect(viaWarden.error?.C).toBe('08P01');
      expect(viaWarden.error?.C).toBe(viaPg.error?.C);
      expect(viaWarden.error?.M).toBe(viaPg.error?.M);
      expect(viaWarden.closed).toBe(true);
      expect(viaWarden.elapsed).toBeLessThan(1_000);
    });
  }

  /** Send `bytes` after a login; every message until the connection closes (or 1.5 s pass), as a shape. */
  async function answerShape(port: number, direct: boolean, bytes: Buffer): Promise<{ shape: string; elapsed: number }> {
    const w = direct ? await login(port, 'warden_svc', SVC_PASSWORD) : await login(port, 'alice', PASSWORDS.alice);
    const t0 = Date.now();
    w.write(bytes);
    const msgs = [];
    for (;;) {
      try {
        msgs.push(await w.read(Math.max(1, t0 + 1_500 - Date.now())));
      } catch {
        break;
      }
    }
    return { shape: shapeOf(msgs), elapsed: Date.now() - t0 };
  }

  it('the requests before the bad message are answered first, then FATAL (a Query, a failing Parse, a StartupMessage)', async () => {
    const bytes = Buffer.concat([Q('SELECT 1'), P('', 'SELEC nope'), startupPacket({ user: 'x' })]);
    const viaPg = await answerShape(env.cluster.port, true, bytes);
    const viaWarden = await answerShape(env.warden.port, false, bytes);
    expect(viaPg.shape).toBe('T D C Z:I E:42601 E:08P01');
    expect(viaWarden.shape).toBe(viaPg.shape);
    expect(viaWarden.elapsed).toBeLessThan(1_000);
  });

  it('the same with an unflushed Parse/Bind/Execute before the bad message (no Sync): answered, then FATAL', async () => {
    const bytes = Buffer.concat([P('', 'SELECT 5'), B('', ''), E('', 0), startupPacket({ user: 'x' })]);
    const viaPg = await answerShape(env.cluster.port, true, bytes);
    const viaWarden = await answerShape(env.warden.port, false, bytes);
    expect(viaWarden.shape).toBe(viaPg.shape);
    expect(viaWarden.shape).toMatch(/E:08P01$/);
    expect(viaWarden.elapsed).toBeLessThan(1_000);
  });

  it('a statement still running when the bad message comes: FATAL within about a second, the statement is cancelled', async () => {
    const bytes = Buffer.concat([Q('SELECT pg_sleep(30)'), startupPacket({ user: 'x' })]);
    const viaWarden = await answerShape(env.warden.port, false, bytes);
    expect(viaWarden.shape).toBe('E:08P01');
    expect(viaWarden.elapsed).toBeLessThan(1_500);
  });

  it('a Sync claiming 100,000 bytes: FATAL 08P01 at once (small messages are limited as in PostgreSQL)', async () => {
    const b = Buffer.from([0x53, 0, 0x01, 0x86, 0xa4]);
    const viaWarden = await afterLogin(env.warden.port, false, b);
    expect(viaWarden.error?.C).toBe('08P01');
    expect(viaWarden.error?.M).toMatch(/too large/);
    expect(viaWarden.closed).toBe(true);
    // PostgreSQL closes without a word (COMMERROR): the same ending, minus the message.
    const viaPg = await afterLogin(env.cluster.port, true, b);
    expect(viaPg.closed).toBe(true);
  });
});

describe('during authentication: a message that is not the SASL response → FATAL 08P01 at once', () => {
  for (const [what, bytes] of [
    ['a lone 0x00 byte', Buffer.from([0])],
    ['a StartupMessage', startupPacket({ user: 'alice', database: 'app' })],
    ['a Query', Q('SELECT 1')],
  ] as [string, Buffer][]) {
    it(`${what} instead of the SASLInitialResponse, like PostgreSQL`, async () => {
      const answers = [];
      for (const [port, user] of [
        [env.cluster.port, 'warden_svc'],
        [env.warden.port, 'alice'],
      ] as [number, string][]) {
        const r = await Raw.connect(port);
        r.sock.write(startupPacket({ user, database: 'app' }));
        expect(await r.until(() => r.buf.length >= 9, 3_000)).toBe(true); // AuthenticationSASL
        r.buf = r.buf.subarray(1 + r.buf.readInt32BE(1));
        const t0 = Date.now();
        r.sock.write(bytes);
        answers.push(await r.fatalAndClose(t0));
        r.sock.destroy();
      }
      const [viaPg, viaWarden] = answers;
      expect(viaPg.error?.C).toBe('08P01');
      expect(viaWarden.error?.S).toBe('FATAL');
      expect(viaWarden.error?.C).toBe('08P01');
      expect(viaWarden.closed).toBe(true);
      expect(viaWarden.elapsed).toBeLessThan(1_000);
    });
  }
});

describe('startup: repeated SSLRequest / GSSENCRequest are refused as PostgreSQL does', () => {
  /** Send each packet, reading a one-byte answer after each negotiation request; then the ending. */
  async function negotiate(port: number, packets: Buffer[]): Promise<{ answers: string; error: ErrorFields | null; closed: boolean; elapsed: number }> {
    const r = await Raw.connect(port);
    let answers = '';
    let t0 = Date.now();
    for (const [i, p] of packets.entries()) {
      t0 = Date.now();
      r.sock.write(p);
      const negotiation = p.length === 8 && (p.equals(SSL_REQUEST) || p.equals(GSSENC_REQUEST));
      if (negotiation && i < packets.length - 1) answers += await r.byte();
    }
    const end = await r.fatalAndClose(t0);
    r.sock.destroy();
    return { answers, ...end };
  }

  it('SSLRequest, N, SSLRequest: FATAL 0A000 unsupported frontend protocol 1234.5679, exactly like PostgreSQL', async () => {
    const viaPg = await negotiate(env.cluster.port, [SSL_REQUEST, SSL_REQUEST]);
    const viaWarden = await negotiate(env.warden.port, [SSL_REQUEST, SSL_REQUEST]);
    expect(viaPg.answers).toBe('N'); // the test cluster has no TLS
    expect(viaWarden.answers).toBe('N');
    expect(viaWarden.error?.C).toBe(viaPg.error?.C);
    expect(viaWarden.error?.M).toBe(viaPg.error?.M);
    expect(viaWarden.error?.M).toBe('unsupported frontend protocol 1234.5679: server supports 3.0 to 3.0');
    expect(viaWarden.closed).toBe(true);
    expect(viaWarden.elapsed).toBeLessThan(1_000);
  });

  // (The test cluster is built with GSSAPI and would answer 'G': Warden, which has no GSSAPI,
  // answers 'N' and then refuses a repeat the way PostgreSQL's ProcessStartupPacket does.)
  const cases: [string, Buffer[], string, string][] = [
    ['GSSENCRequest, N, GSSENCRequest', [GSSENC_REQUEST, GSSENC_REQUEST], 'N', '1234.5680'],
    ['SSLRequest, N, GSSENCRequest, N, GSSENCRequest', [SSL_REQUEST, GSSENC_REQUEST, GSSENC_REQUEST], 'NN', '1234.5680'],
    ['GSSENCRequest, N, SSLRequest, N, SSLRequest', [GSSENC_REQUEST, SSL_REQUEST, SSL_REQUEST], 'NN', '1234.5679'],
  ];
  for (const [what, packets, answers, version] of cases) {
    it(`${what}: FATAL 0A000 unsupported frontend protocol ${version}`, async () => {
      const viaWarden = await negotiate(env.warden.port, packets);
      expect(viaWarden.answers).toBe(answers);
      expect(viaWarden.error?.S).toBe('FATAL');
      expect(viaWarden.error?.C).toBe('0A000');
      expect(viaWarden.error?.M).toBe(`unsupported frontend protocol ${version}: server supports 3.0 to 3.0`);
      expect(viaWarden.closed).toBe(true);
      expect(viaWarden.elapsed).toBeLessThan(1_000);
    });
  }

  it('GSSENCRequest, N, SSLRequest, N, GSSENCRequest, N, then a StartupMessage: allowed (each refusal lets the other kind follow, as in PostgreSQL)', async () => {
    const r = await Raw.connect(env.warden.port);
    r.sock.write(GSSENC_REQUEST);
    expect(await r.byte()).toBe('N');
    r.sock.write(SSL_REQUEST);
    expect(await r.byte()).toBe('N');
    r.sock.write(GSSENC_REQUEST);
    expect(await r.byte()).toBe('N');
    r.sock.write(startupPacket({ user: 'alice', database: 'app' }));
    expect(await r.until(() => r.buf.length >= 9, 3_000)).toBe(true);
    expect(String.fromCharCode(r.buf[0])).toBe('R'); // AuthenticationSASL
    r.sock.destroy();
  });

  /** TLS through an SSLRequest, then `packet` inside TLS. */
  async function insideTls(packet: Buffer): Promise<{ error: ErrorFields | null; closed: boolean; elapsed: number }> {
    const raw = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect({ host: '127.0.0.1', port: tlsWarden.port }, () => resolve(s));
      s.once('error', reject);
    });
    const answer = await new Promise<string>((resolve) => {
      raw.once('data', (d: Buffer) => resolve(d.toString('latin1')));
      raw.write(SSL_REQUEST);
    });
    expect(answer).toBe('S');
    const t = await new Promise<tls.TLSSocket>((resolve, reject) => {
      const s = tls.connect({ socket: raw, rejectUnauthorized: false }, () => resolve(s));
      s.once('error', reject);
    });
    const r = new Raw(t);
    const t0 = Date.now();
    t.write(packet);
    const end = await r.fatalAndClose(t0);
    t.destroy();
    return end;
  }

  it('an SSLRequest inside TLS: FATAL 0A000 unsupported frontend protocol 1234.5679', async () => {
    const end = await insideTls(SSL_REQUEST);
    expect(end.error?.C).toBe('0A000');
    expect(end.error?.M).toBe('unsupported frontend protocol 1234.5679: server supports 3.0 to 3.0');
    expect(end.closed).toBe(true);
  });

  it('a GSSENCRequest inside TLS: FATAL 0A000 unsupported frontend protocol 1234.5680', async () => {
    const end = await insideTls(GSSENC_REQUEST);
    expect(end.error?.C).toBe('0A000');
    expect(end.error?.M).toBe('unsupported frontend protocol 1234.5680: server supports 3.0 to 3.0');
    expect(end.closed).toBe(true);
  });
});

describe('other sessions carry on', () => {
  it('while 40 hostile clients send StartupMessages after login, a session keeps answering within 200 ms', async () => {
    const probe = await login(env.warden.port, 'bob', PASSWORDS.bob);
    const hostile = Promise.all(
      Array.from({ length: 40 }, async () => {
        const r = await afterLogin(env.warden.port, false, startupPacket({ user: 'alice' }));
        expect(r.error?.C).toBe('08P01');
      }),
    );
    let worst = 0;
    for (let i = 0; i < 30; i++) {
      const t0 = Date.now();
      probe.write(Q('SELECT 2'));
      expect(rowsOf(await readyN(probe))).toEqual([['2']]);
      worst = Math.max(worst, Date.now() - t0);
      await new Promise((r) => setTimeout(r, 10));
    }
    await hostile;
    expect(worst).toBeLessThan(200);
  });
});
