import { MessageReader } from './reader.js';
import { MessageWriter } from './writer.js';
import { B } from './codes.js';

/** The fields of an ErrorResponse / NoticeResponse. Keys are PostgreSQL's field names. */
export interface PgErrorFields {
  severity: 'ERROR' | 'FATAL' | 'PANIC' | 'WARNING' | 'NOTICE' | 'DEBUG' | 'INFO' | 'LOG';
  code: string;
  message: string;
  detail?: string;
  hint?: string;
  position?: string;
  where?: string;
  schema?: string;
  table?: string;
  column?: string;
  dataType?: string;
  constraint?: string;
  file?: string;
  line?: string;
  routine?: string;
}

const FIELD_CODES: Record<string, keyof PgErrorFields> = {
  S: 'severity',
  C: 'code',
  M: 'message',
  D: 'detail',
  H: 'hint',
  P: 'position',
  W: 'where',
  s: 'schema',
  t: 'table',
  c: 'column',
  d: 'dataType',
  n: 'constraint',
  F: 'file',
  L: 'line',
  R: 'routine',
};

const ORDER: [string, keyof PgErrorFields][] = Object.entries(FIELD_CODES);

/** Encode an ErrorResponse ('E') or NoticeResponse ('N'). */
export function encodeErrorLike(type: number, f: PgErrorFields): Buffer {
  const w = new MessageWriter(64 + f.message.length).begin(type);
  for (const [code, key] of ORDER) {
    const v = f[key];
    if (v === undefined) continue;
    w.byte(code.charCodeAt(0)).cstring(String(v));
    // PostgreSQL also sends the non-localized severity ('V').
    if (code === 'S') w.byte('V'.charCodeAt(0)).cstring(String(v));
  }
  return w.byte(0).end().toBuffer();
}

export function encodeError(f: Omit<PgErrorFields, 'severity'> & { severity?: PgErrorFields['severity'] }): Buffer {
  return encodeErrorLike(B.ErrorResponse, { severity: 'ERROR', ...f });
}

export function encodeNotice(f: Omit<PgErrorFields, 'severity'> & { severity?: PgErrorFields['severity'] }): Buffer {
  return encodeErrorLike(B.NoticeResponse, { severity: 'NOTICE', ...f });
}

/** Decode the body of an ErrorResponse / NoticeResponse. Unknown fields are ignored. */
export function decodeErrorFields(body: Buffer): PgErrorFields {
  const r = new MessageReader(body, 'ErrorResponse');
  const out: Partial<Record<keyof PgErrorFields, string>> = {};
  for (;;) {
    const code = r.byte();
    if (code === 0) break;
    const value = r.cstring();
    const key = FIELD_CODES[String.fromCharCode(code)];
    if (key) out[key] = value;
  }
  return {
    ...out,
    severity: (out.severity ?? 'ERROR') as PgErrorFields['severity'],
    code: out.code ?? 'XX000',
    message: out.message ?? '',
  };
}
