/**
 * Frontend (client → server) messages: pure decoders for what Warden inspects,
 * and encoders for what Warden itself sends to the upstream.
 */
import { MessageReader, ProtocolError } from './reader.js';
import { MessageWriter } from './writer.js';
import {
  CANCEL_REQUEST_CODE,
  F,
  GSSENC_REQUEST_CODE,
  PROTOCOL_3_0,
  SSL_REQUEST_CODE,
} from './codes.js';

export type StartupPacket =
  | { kind: 'ssl' }
  | { kind: 'gssenc' }
  | { kind: 'cancel'; pid: number; secret: Buffer }
  | { kind: 'startup'; major: number; minor: number; params: Map<string, string> };

/** Decode a startup-phase packet body (everything after the int32 length). */
export function decodeStartupPacket(body: Buffer): StartupPacket {
  const r = new MessageReader(body, 'startup packet');
  const code = r.int32();
  if (code === SSL_REQUEST_CODE) return { kind: 'ssl' };
  if (code === GSSENC_REQUEST_CODE) return { kind: 'gssenc' };
  if (code === CANCEL_REQUEST_CODE) {
    const pid = r.int32();
    const secret = Buffer.from(r.rest());
    if (secret.length < 4 || secret.length > 256) throw new ProtocolError('invalid cancel request');
    return { kind: 'cancel', pid, secret };
  }
  const major = code >>> 16;
  const minor = code & 0xffff;
  const params = new Map<string, string>();
  if (major !== 3) return { kind: 'startup', major, minor, params };
  for (;;) {
    const name = r.cstring();
    if (name === '') break;
    const value = r.cstring();
    if (params.has(name)) throw new ProtocolError(`invalid startup packet: duplicate parameter "${name}"`);
    params.set(name, value);
  }
  if (r.remaining !== 0) throw new ProtocolError('invalid startup packet layout: expected terminator as last byte');
  return { kind: 'startup', major, minor, params };
}

export function encodeStartup(params: Iterable<[string, string]>): Buffer {
  const w = new MessageWriter().begin(0).int32(PROTOCOL_3_0);
  for (const [k, v] of params) w.cstring(k).cstring(v);
  return w.byte(0).end().toBuffer();
}

export function encodeSSLRequest(): Buffer {
  return new MessageWriter(8).begin(0).int32(SSL_REQUEST_CODE).end().toBuffer();
}

export function encodeCancelRequest(pid: number, secret: Buffer): Buffer {
  return new MessageWriter(16).begin(0).int32(CANCEL_REQUEST_CODE).int32(pid).bytes(secret).end().toBuffer();
}

export function encodePassword(password: string): Buffer {
  return new MessageWriter().begin(F.Password).cstring(password).end().toBuffer();
}

export function encodeSASLInitialResponse(mechanism: string, data: Buffer): Buffer {
  return new MessageWriter().begin(F.Password).cstring(mechanism).int32(data.length).bytes(data).end().toBuffer();
}

export function encodeSASLResponse(data: Buffer): Buffer {
  return new MessageWriter().begin(F.Password).bytes(data).end().toBuffer();
}

export function encodeQuery(sql: string): Buffer {
  return new MessageWriter(sql.length + 16).begin(F.Query).cstring(sql).end().toBuffer();
}

export function encodeParse(name: string, sql: string, paramTypes: number[] = []): Buffer {
  const w = new MessageWriter(sql.length + 32).begin(F.Parse).cstring(name).cstring(sql).int16(paramTypes.length);
  for (const t of paramTypes) w.int32(t);
  return w.end().toBuffer();
}

export function encodeSync(): Buffer {
  return Buffer.from([F.Sync, 0, 0, 0, 4]);
}

export function encodeFlush(): Buffer {
  return Buffer.from([F.Flush, 0, 0, 0, 4]);
}

export function encodeTerminate(): Buffer {
  return Buffer.from([F.Terminate, 0, 0, 0, 4]);
}

export function decodeSASLInitialResponse(body: Buffer): { mechanism: string; data: Buffer } {
  const r = new MessageReader(body, 'SASLInitialResponse');
  const mechanism = r.cstring();
  const len = r.int32();
  const data = len === -1 ? Buffer.alloc(0) : r.bytes(len);
  r.end();
  return { mechanism, data };
}

export function decodePasswordMessage(body: Buffer): string {
  const r = new MessageReader(body, 'PasswordMessage');
  const s = r.cstring();
  r.end();
  return s;
}

/**
 * The SQL of a Query message held in bytes [start, end) of `buf` (header
 * included): one NUL-terminated string. Range-based, without a reader object,
 * because the relay calls it for every simple-protocol statement.
 */
export function decodeQueryAt(buf: Buffer, start: number, end: number): string {
  if (end - start < 6 || buf[end - 1] !== 0) throw invalidQuery();
  const sql = buf.toString('utf8', start + 5, end - 1);
  // A NUL byte decodes to U+0000 and nothing else does: a string search instead of a byte scan.
  if (sql.includes('\0')) throw invalidQuery();
  return sql;
}

function invalidQuery(): ProtocolError {
  return new ProtocolError('invalid Query message: expected one NUL-terminated string');
}

export interface ParseMessage {
  name: string;
  sql: string;
  paramTypes: number[];
}

export function decodeParse(body: Buffer): ParseMessage {
  const r = new MessageReader(body, 'Parse');
  const name = r.cstring();
  const sql = r.cstring();
  const n = r.int16();
  if (n < 0) throw new ProtocolError('invalid Parse: negative parameter count');
  const paramTypes: number[] = new Array(n);
  for (let i = 0; i < n; i++) paramTypes[i] = r.int32() >>> 0;
  r.end();
  return { name, sql, paramTypes };
}

export interface BindMessage {
  portal: string;
  statement: string;
  /** 0 = text, 1 = binary, per parameter (already expanded from the 0/1/N form). */
  paramFormats: number[];
  /** null = SQL NULL. Views into the message buffer. */
  params: (Buffer | null)[];
  /** Result column format codes as sent (0, 1 or N entries). */
  resultFormats: number[];
}

export function decodeBind(body: Buffer): BindMessage {
  const r = new MessageReader(body, 'Bind');
  const portal = r.cstring();
  const statement = r.cstring();
  const nf = r.int16();
  if (nf < 0) throw new ProtocolError('invalid Bind: negative format count');
  const formats: number[] = new Array(nf);
  for (let i = 0; i < nf; i++) formats[i] = r.int16();
  const np = r.int16();
  if (np < 0) throw new ProtocolError('invalid Bind: negative parameter count');
  if (nf > 1 && nf !== np) throw new ProtocolError(`bind message has ${nf} parameter formats but ${np} parameters`);
  const params: (Buffer | null)[] = new Array(np);
  for (let i = 0; i < np; i++) {
    const len = r.int32();
    params[i] = len === -1 ? null : r.bytes(len);
  }
  const nr = r.int16();
  if (nr < 0) throw new ProtocolError('invalid Bind: negative result format count');
  const resultFormats: number[] = new Array(nr);
  for (let i = 0; i < nr; i++) resultFormats[i] = r.int16();
  r.end();
  const paramFormats = new Array<number>(np);
  for (let i = 0; i < np; i++) paramFormats[i] = nf === 0 ? 0 : nf === 1 ? formats[0] : formats[i];
  return { portal, statement, paramFormats, params, resultFormats };
}

export function decodeExecute(body: Buffer): { portal: string; maxRows: number } {
  const r = new MessageReader(body, 'Execute');
  const portal = r.cstring();
  const maxRows = r.int32();
  r.end();
  return { portal, maxRows };
}

/** Describe and Close share a layout: 'S' (statement) or 'P' (portal) + name. */
export function decodeTarget(body: Buffer, what: 'Describe' | 'Close'): { target: 'S' | 'P'; name: string } {
  const r = new MessageReader(body, what);
  const t = String.fromCharCode(r.byte());
  if (t !== 'S' && t !== 'P') throw new ProtocolError(`invalid ${what.toUpperCase()} message subtype ${t.charCodeAt(0)}`);
  const name = r.cstring();
  r.end();
  return { target: t, name };
}

/**
 * Parse the `options` startup parameter the way PostgreSQL does
 * (space-separated, backslash escapes) into `-c name=value` / `--name=value` pairs.
 * Returns the GUC settings and the leftover switches it does not understand.
 */
export function parseStartupOptions(options: string): { settings: [string, string][]; other: string[] } {
  const words: string[] = [];
  let cur = '';
  let has = false;
  for (let i = 0; i < options.length; i++) {
    const ch = options[i];
    if (ch === '\\' && i + 1 < options.length) {
      cur += options[++i];
      has = true;
    } else if (ch === ' ' || ch === '\t' || ch === '\n' || ch === '\r') {
      if (has) words.push(cur);
      cur = '';
      has = false;
    } else {
      cur += ch;
      has = true;
    }
  }
  if (has) words.push(cur);
  const settings: [string, string][] = [];
  const other: string[] = [];
  for (let i = 0; i < words.length; i++) {
    const w = words[i];
    let kv: string | undefined;
    if (w === '-c' && i + 1 < words.length) kv = words[++i];
    else if (w.startsWith('-c') && w.length > 2) kv = w.slice(2);
    else if (w.startsWith('--') && w.includes('=')) kv = w.slice(2);
    if (kv !== undefined) {
      const eq = kv.indexOf('=');
      if (eq > 0) {
        settings.push([kv.slice(0, eq).replace(/-/g, '_'), kv.slice(eq + 1)]);
        continue;
      }
    }
    other.push(w);
  }
  return { settings, other };
}

/** Inverse of parseStartupOptions for settings: `-c name=value` with escaping. */
export function formatStartupOptions(settings: Iterable<[string, string]>, other: string[] = []): string {
  const esc = (s: string): string => s.replace(/([\\ \t\n\r])/g, '\\$1');
  const parts: string[] = [];
  for (const [k, v] of settings) parts.push(`-c ${esc(k)}=${esc(v)}`);
  for (const o of other) parts.push(esc(o));
  return parts.join(' ');
}
