/**
 * Backend (server → client) messages: encoders for what Warden answers itself,
 * decoders for what Warden inspects from the upstream.
 */
import { MessageReader } from './reader.js';
import { MessageWriter } from './writer.js';
import { AUTH, B } from './codes.js';

export function encodeAuth(code: number, data?: Buffer): Buffer {
  const w = new MessageWriter(16 + (data?.length ?? 0)).begin(B.Authentication).int32(code);
  if (data) w.bytes(data);
  return w.end().toBuffer();
}

export function encodeAuthSASL(mechanisms: string[]): Buffer {
  const w = new MessageWriter().begin(B.Authentication).int32(AUTH.SASL);
  for (const m of mechanisms) w.cstring(m);
  return w.byte(0).end().toBuffer();
}

export function encodeParameterStatus(name: string, value: string): Buffer {
  return new MessageWriter().begin(B.ParameterStatus).cstring(name).cstring(value).end().toBuffer();
}

export function encodeBackendKeyData(pid: number, secret: Buffer): Buffer {
  return new MessageWriter(16).begin(B.BackendKeyData).int32(pid).bytes(secret).end().toBuffer();
}

export type TxStatus = 'I' | 'T' | 'E';

export function encodeReadyForQuery(status: TxStatus): Buffer {
  return Buffer.from([B.ReadyForQuery, 0, 0, 0, 5, status.charCodeAt(0)]);
}

export function encodeNegotiateProtocolVersion(minor: number, unsupported: string[]): Buffer {
  const w = new MessageWriter().begin(B.NegotiateProtocolVersion).int32(minor).int32(unsupported.length);
  for (const u of unsupported) w.cstring(u);
  return w.end().toBuffer();
}

export type AuthRequest =
  | { code: typeof AUTH.Ok }
  | { code: typeof AUTH.CleartextPassword }
  | { code: typeof AUTH.MD5Password; salt: Buffer }
  | { code: typeof AUTH.SASL; mechanisms: string[] }
  | { code: typeof AUTH.SASLContinue | typeof AUTH.SASLFinal; data: Buffer }
  | { code: number; unsupported: true };

export function decodeAuth(body: Buffer): AuthRequest {
  const r = new MessageReader(body, 'Authentication');
  const code = r.int32();
  switch (code) {
    case AUTH.Ok:
      return { code: AUTH.Ok };
    case AUTH.CleartextPassword:
      return { code: AUTH.CleartextPassword };
    case AUTH.MD5Password:
      return { code: AUTH.MD5Password, salt: Buffer.from(r.bytes(4)) };
    case AUTH.SASL: {
      const mechanisms: string[] = [];
      for (;;) {
        const m = r.cstring();
        if (m === '') break;
        mechanisms.push(m);
      }
      return { code: AUTH.SASL, mechanisms };
    }
    case AUTH.SASLContinue:
    case AUTH.SASLFinal:
      return { code, data: Buffer.from(r.rest()) };
    default:
      return { code, unsupported: true };
  }
}

export function decodeParameterStatus(body: Buffer): { name: string; value: string } {
  const r = new MessageReader(body, 'ParameterStatus');
  return { name: r.cstring(), value: r.cstring() };
}

export function decodeBackendKeyData(body: Buffer): { pid: number; secret: Buffer } {
  const r = new MessageReader(body, 'BackendKeyData');
  const pid = r.int32();
  return { pid, secret: Buffer.from(r.rest()) };
}

export interface FieldDescription {
  name: string;
  tableOid: number;
  columnAttr: number;
  typeOid: number;
  typeSize: number;
  typeMod: number;
  format: number;
}

export function decodeRowDescription(body: Buffer): FieldDescription[] {
  const r = new MessageReader(body, 'RowDescription');
  const n = r.int16();
  const out: FieldDescription[] = new Array(n);
  for (let i = 0; i < n; i++) {
    out[i] = {
      name: r.cstring(),
      tableOid: r.int32() >>> 0,
      columnAttr: r.int16(),
      typeOid: r.int32() >>> 0,
      typeSize: r.int16(),
      typeMod: r.int32(),
      format: r.int16(),
    };
  }
  return out;
}

/** DataRow columns as views into the body (null = SQL NULL). */
export function decodeDataRow(body: Buffer): (Buffer | null)[] {
  const r = new MessageReader(body, 'DataRow');
  const n = r.int16();
  const out: (Buffer | null)[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const len = r.int32();
    out[i] = len === -1 ? null : r.bytes(len);
  }
  return out;
}

export function encodeDataRow(values: readonly (Buffer | null)[]): Buffer {
  let size = 7;
  for (const v of values) size += 4 + (v ? v.length : 0);
  const w = new MessageWriter(size).begin(B.DataRow).int16(values.length);
  for (const v of values) {
    if (v === null) w.int32(-1);
    else w.int32(v.length).bytes(v);
  }
  return w.end().toBuffer();
}

export function decodeCommandComplete(body: Buffer): string {
  return new MessageReader(body, 'CommandComplete').cstring();
}
