/**
 * Extended-protocol batches by hand: encoders for every frontend message, a
 * login that also works straight against PostgreSQL, and readers of answers.
 */
import net from 'node:net';
import tls from 'node:tls';
import { expect } from 'vitest';
import { ScramClientExchange } from '../../src/auth/index.js';
import { SSL_REQUEST, Wire, cstr, int16, int32, message, parseErrorFields, startupPacket, type ErrorFields, type Msg } from './raw-wire.js';

export const Q = (sql: string): Buffer => message('Q', cstr(sql));
export const P = (name: string, sql: string, types: number[] = []): Buffer =>
  message('P', Buffer.concat([cstr(name), cstr(sql), int16(types.length), ...types.map(int32)]));
/** Bind with text parameters (null = SQL NULL) and text results. */
export const B = (portal: string, stmt: string, params: (string | null)[] = []): Buffer =>
  message(
    'B',
    Buffer.concat([
      cstr(portal),
      cstr(stmt),
      int16(0),
      int16(params.length),
      ...params.map((p) => (p === null ? int32(-1) : Buffer.concat([int32(Buffer.byteLength(p)), Buffer.from(p)]))),
      int16(0),
    ]),
  );
export const D = (what: 'S' | 'P', name: string): Buffer => message('D', Buffer.concat([Buffer.from(what), cstr(name)]));
export const E = (portal: string, maxRows = 0): Buffer => message('E', Buffer.concat([cstr(portal), int32(maxRows)]));
export const C = (what: 'S' | 'P', name: string): Buffer => message('C', Buffer.concat([Buffer.from(what), cstr(name)]));
export const S = (): Buffer => message('S');
export const H = (): Buffer => message('H');

/** A Wire over TLS: SSLRequest, 'S', the handshake (the certificate is not checked). */
export async function connectTls(port: number): Promise<Wire> {
  const raw = await new Promise<net.Socket>((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port }, () => resolve(s));
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
  const w = new Wire(t);
  Wire.opened.add(w);
  return w;
}

/** SCRAM-SHA-256 login by hand (to Warden, or straight to PostgreSQL); resolves after ReadyForQuery. */
export async function login(port: number, user: string, password: string, database = 'app', overTls = false): Promise<Wire> {
  const wire = overTls ? await connectTls(port) : await Wire.connect(port);
  wire.write(startupPacket({ user, database }));
  let m = await wire.read();
  if (m.type === 'E') throw new Error(`login failed: ${JSON.stringify(parseErrorFields(m.body))}`);
  expect(m.type).toBe('R');
  expect(m.body.readInt32BE(0)).toBe(10);
  const mechs = m.body.toString('utf8', 4).split('\0').filter(Boolean);
  const scram = new ScramClientExchange({ password });
  const first = scram.clientFirst(mechs.filter((x) => !x.endsWith('-PLUS')));
  wire.write(message('p', Buffer.concat([cstr(first.mechanism), int32(first.data.length), first.data])));
  m = await wire.read();
  if (m.type === 'E') throw new Error(`login failed: ${JSON.stringify(parseErrorFields(m.body))}`);
  wire.write(message('p', scram.handleServerFirst(m.body.subarray(4))));
  m = await wire.read();
  if (m.type === 'E') throw new Error(`login failed: ${JSON.stringify(parseErrorFields(m.body))}`);
  scram.handleServerFinal(m.body.subarray(4));
  for (;;) {
    m = await wire.read();
    if (m.type === 'E') throw new Error(`login failed: ${JSON.stringify(parseErrorFields(m.body))}`);
    if (m.type === 'Z') return wire;
  }
}

/** Messages up to and including the n-th ReadyForQuery. */
export async function readyN(w: Wire, n = 1, timeoutMs = 10_000): Promise<Msg[]> {
  const out: Msg[] = [];
  let seen = 0;
  while (seen < n) {
    const m = await w.read(timeoutMs);
    out.push(m);
    if (m.type === 'Z') seen++;
  }
  return out;
}

export const errorsOf = (msgs: Msg[]): ErrorFields[] => msgs.filter((m) => m.type === 'E').map((m) => parseErrorFields(m.body));

/** The text values of the DataRows among `msgs`. */
export function rowsOf(msgs: Msg[]): (string | null)[][] {
  return msgs
    .filter((m) => m.type === 'D')
    .map((m) => {
      const n = m.body.readInt16BE(0);
      const row: (string | null)[] = [];
      let at = 2;
      for (let i = 0; i < n; i++) {
        const len = m.body.readInt32BE(at);
        at += 4;
        if (len < 0) row.push(null);
        else {
          row.push(m.body.toString('utf8', at, at + len));
          at += len;
        }
      }
      return row;
    });
}

/** A simple query's rows (throws on error). */
export async function simpleRows(w: Wire, sql: string): Promise<(string | null)[][]> {
  w.write(Q(sql));
  const msgs = await readyN(w);
  const errs = errorsOf(msgs);
  if (errs.length > 0) throw new Error(`${sql}: ${errs[0].C} ${errs[0].M}`);
  return rowsOf(msgs);
}

/** The shape of an answer: message types, with error SQLSTATEs and ReadyForQuery statuses. */
export function shapeOf(msgs: Msg[]): string {
  return msgs
    .map((m) => (m.type === 'E' ? `E:${parseErrorFields(m.body).C}` : m.type === 'Z' ? `Z:${String.fromCharCode(m.body[0])}` : m.type))
    .join(' ');
}

/** Write `b` in pieces of `step` bytes, yielding to the event loop between pieces. */
export async function writeSplit(w: Wire, b: Buffer, step: number): Promise<void> {
  for (let i = 0; i < b.length; i += step) {
    w.write(b.subarray(i, Math.min(b.length, i + step)));
    await new Promise((r) => setImmediate(r));
  }
}
