/**
 * Type-preserving masking of one wire cell (a DataRow column value), given the column's type
 * OID and format code from RowDescription. The result must stay a valid value of the column
 * type, and the original bytes are never passed through when a cell cannot be masked
 * faithfully: such cells become SQL NULL.
 *
 * By column type (text format; binary notes in brackets):
 *   text, varchar, bpchar, name, "char", unknown, and non-built-in OIDs (≥ 16384: citext,
 *     enums…) → maskText; bpchar/"char" keep their length in characters (padded/truncated),
 *     varchar/name never grow. [binary = the same UTF-8 bytes; a non-built-in type whose
 *     binary value is not plain UTF-8 text (user arrays, composites) → NULL]
 *   int2/int4/int8/numeric/float4/float8 → same-width number (numeric.ts) for fake/partial/
 *     redact; hash → NULL. [big-endian ints, IEEE floats, numeric's base-10000 digits]
 *   date, timestamp, timestamptz → shifted by a deterministic 1–365 days (temporal.ts);
 *     redact → 2000-01-01; hash → NULL. [int32 days / int64 µs since 2000-01-01]
 *   uuid → deterministic version-4 uuid; redact → the nil uuid; hash → NULL. [16 bytes]
 *   inet/cidr → address of the same family, prefix length kept, cidr host bits zero;
 *     redact → 0.0.0.0 / ::; hash → NULL. [family, bits, is_cidr, length, address]
 *   json/jsonb → every string value masked with maskText and every number like a numeric
 *     column (keys, structure, booleans kept; hash → numbers null). [jsonb: version byte 1]
 *   1-D arrays of the above (text format) → element by element; other arrays → NULL.
 *   bytea → redact: the same number of `*` (0x2a) bytes; otherwise NULL. bool → NULL.
 *   Any other built-in type, and anything unparseable → NULL.
 * partial on non-text types behaves like fake (except numbers: last four digits kept).
 */
import type { MaskerName } from '../config/types.js';
import { findSensitive } from './detectors.js';
import { rewriteJson } from './json.js';
import { maskSpans, maskText } from './maskers.js';
import { formatIp, parseIp, zeroHostBits } from './netaddr.js';
import { INT_LIMITS, type NumberLimit, type NumberMasker, decodeNumeric, encodeNumeric, isSpecialNumber, maskNumberText } from './numeric.js';
import { formatArrayLiteral, parseArrayLiteral } from './pgarray.js';
import { canonicalType, seeded } from './random.js';
import { type TemporalMasker, maskDateBinary, maskDateText, maskTimestampBinary, maskTimestampText } from './temporal.js';

export const TYPE_OIDS = {
  bool: 16,
  bytea: 17,
  char: 18,
  name: 19,
  int8: 20,
  int2: 21,
  int4: 23,
  text: 25,
  json: 114,
  cidr: 650,
  float4: 700,
  float8: 701,
  unknown: 705,
  inet: 869,
  bpchar: 1042,
  varchar: 1043,
  date: 1082,
  timestamp: 1114,
  timestamptz: 1184,
  numeric: 1700,
  uuid: 2950,
  jsonb: 3802,
} as const;

/** Array type OID → element type OID, for the arrays masked element by element. */
export const ARRAY_ELEMENT_OIDS: Readonly<Record<number, number>> = {
  1000: TYPE_OIDS.bool,
  1001: TYPE_OIDS.bytea,
  1002: TYPE_OIDS.char,
  1003: TYPE_OIDS.name,
  1005: TYPE_OIDS.int2,
  1007: TYPE_OIDS.int4,
  1009: TYPE_OIDS.text,
  1014: TYPE_OIDS.bpchar,
  1015: TYPE_OIDS.varchar,
  1016: TYPE_OIDS.int8,
  1021: TYPE_OIDS.float4,
  1022: TYPE_OIDS.float8,
  1041: TYPE_OIDS.inet,
  651: TYPE_OIDS.cidr,
  1115: TYPE_OIDS.timestamp,
  1182: TYPE_OIDS.date,
  1185: TYPE_OIDS.timestamptz,
  1231: TYPE_OIDS.numeric,
  199: TYPE_OIDS.json,
  2951: TYPE_OIDS.uuid,
  3807: TYPE_OIDS.jsonb,
};

/** OIDs from here on are user-defined or extension types (citext, enums…): treated as text. */
export const FIRST_USER_OID = 16384;

const T = TYPE_OIDS;
const TEXT_OIDS: ReadonlySet<number> = new Set([T.text, T.varchar, T.bpchar, T.name, T.char, T.unknown]);
const INT_LIMIT: Readonly<Record<number, NumberLimit>> = { [T.int2]: INT_LIMITS.int2, [T.int4]: INT_LIMITS.int4, [T.int8]: INT_LIMITS.int8 };
const NUMBER_OIDS: ReadonlySet<number> = new Set([T.int2, T.int4, T.int8, T.numeric, T.float4, T.float8]);
const FLOAT4_MAX = 3.4028234663852886e38;

function isTextLike(oid: number): boolean {
  return TEXT_OIDS.has(oid) || oid >= FIRST_USER_OID;
}

function charLength(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

/** bpchar/"char": exactly `n` characters; varchar/name: at most `n`. */
function fitLength(out: string, n: number, oid: number): string {
  const len = charLength(out);
  if (len > n) return Array.from(out).slice(0, n).join('');
  if (len < n && (oid === T.bpchar || oid === T.char)) return out + ' '.repeat(n - len);
  return out;
}

function limitedLength(oid: number): boolean {
  return oid === T.bpchar || oid === T.char || oid === T.varchar || oid === T.name;
}

// ------------------------------------------------------------------------------ per-type maskers (text form)

function maskTextValue(text: string, oid: number, type: string, masker: MaskerName, key: Buffer): string | null {
  const padded = oid === T.bpchar || oid === T.char;
  const value = padded ? text.replace(/ +$/, '') : text;
  if (value === '' && padded) return text;
  const out = maskText(value, type, masker, key);
  if (out === null) return null;
  return limitedLength(oid) ? fitLength(out, charLength(text), oid) : out;
}

function numberMasker(masker: MaskerName): NumberMasker | undefined {
  if (masker === 'hash' || masker === 'null') return undefined;
  return masker === 'fake' ? 'fake' : masker;
}

function temporalMasker(masker: MaskerName): TemporalMasker | undefined {
  if (masker === 'hash' || masker === 'null') return undefined;
  return masker === 'redact' ? 'redact' : 'fake';
}

function maskNumberValue(text: string, oid: number, canon: string, masker: MaskerName, key: Buffer): string | null {
  const m = numberMasker(masker);
  if (!m) return null;
  const out = maskNumberText(text, m, key, canon, INT_LIMIT[oid]);
  if (out === undefined) return null;
  if (oid === T.float4 || oid === T.float8) {
    const v = Number(out);
    if (!isSpecialNumber(out) && (!Number.isFinite(v) || (oid === T.float4 && Math.abs(v) > FLOAT4_MAX))) {
      return maskNumberText(text, 'redact', key, canon) ?? null;
    }
  }
  return out;
}

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function fakeUuidBytes(seedText: string, canon: string, key: Buffer, original: Buffer): Buffer {
  const out = seeded(
    key,
    canon,
    seedText,
    (f) => {
      const b = Buffer.from(Array.from({ length: 16 }, () => f.number.int(255)));
      b[6] = (b[6] & 0x0f) | 0x40;
      b[8] = (b[8] & 0x3f) | 0x80;
      return b;
    },
    (b) => !b.equals(original),
  );
  return out ?? Buffer.from(original.map((x) => x ^ 0xff));
}

function uuidText(b: Buffer): string {
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

function maskUuidValue(text: string, canon: string, masker: MaskerName, key: Buffer): string | null {
  if (!UUID_RE.test(text) || masker === 'hash') return null;
  const bytes = Buffer.from(text.replace(/-/g, ''), 'hex');
  return uuidText(masker === 'redact' ? Buffer.alloc(16) : fakeUuidBytes(text.toLowerCase(), canon, key, bytes));
}

/** New address bytes of the same family; cidr values keep zero host bits. */
function fakeAddress(addr: Uint8Array, bits: number, cidr: boolean, seedText: string, canon: string, masker: MaskerName, key: Buffer): Uint8Array {
  if (masker === 'redact') return new Uint8Array(addr.length);
  const same = (b: Uint8Array): boolean => b.every((x, i) => x === addr[i]);
  const out = seeded(
    key,
    canon,
    seedText,
    (f) => {
      const b = Uint8Array.from({ length: addr.length }, () => f.number.int(255));
      return cidr ? zeroHostBits(b, bits) : b;
    },
    (b) => !same(b),
  );
  return out ?? addr;
}

function maskInetValue(text: string, oid: number, canon: string, masker: MaskerName, key: Buffer): string | null {
  if (masker === 'hash') return null;
  const m = /^([^/]+)(?:\/(\d{1,3}))?$/.exec(text);
  const addr = m ? parseIp(m[1]) : undefined;
  if (!m || !addr) return null;
  const bits = m[2] === undefined ? addr.length * 8 : Number(m[2]);
  if (bits > addr.length * 8) return null;
  const fresh = fakeAddress(addr, bits, oid === T.cidr, text, canon, masker, key);
  return formatIp(fresh) + (m[2] === undefined ? '' : `/${m[2]}`);
}

function maskJsonValue(text: string, canon: string, type: string, masker: MaskerName, key: Buffer): string | null {
  const out = rewriteJson(text, {
    string: (s) => maskText(s, type, masker, key),
    number: (n) => maskNumberValue(n, T.numeric, canon, masker, key),
  });
  return out ?? null;
}

function maskByteaText(text: string, masker: MaskerName): string | null {
  if (masker !== 'redact') return null;
  let n: number;
  if (text.startsWith('\\x')) n = (text.length - 2) / 2;
  else {
    // escape format: \\ and \ooo are one byte each; other characters their UTF-8 bytes
    n = Buffer.byteLength(text.replace(/\\(?:\\|[0-7]{3})/g, '.'));
  }
  return `\\x${'2a'.repeat(n)}`;
}

function maskArrayValue(text: string, elemOid: number, type: string, masker: MaskerName, key: Buffer): string | null {
  const items = parseArrayLiteral(text);
  if (!items) return null;
  return formatArrayLiteral(items.map((v) => (v === null ? null : maskTextFormat(v, elemOid, type, masker, key))));
}

/** A text-format value of column type `oid`, masked; null = SQL NULL. */
function maskTextFormat(text: string, oid: number, type: string, masker: MaskerName, key: Buffer): string | null {
  const canon = canonicalType(type);
  if (isTextLike(oid)) {
    if (oid >= FIRST_USER_OID && text.startsWith('{') && text.endsWith('}')) {
      const items = parseArrayLiteral(text);
      if (items) return formatArrayLiteral(items.map((v) => (v === null ? null : maskTextValue(v, T.text, type, masker, key))));
    }
    return maskTextValue(text, oid, type, masker, key);
  }
  if (NUMBER_OIDS.has(oid)) return maskNumberValue(text, oid, canon, masker, key);
  switch (oid) {
    case T.date: {
      const m = temporalMasker(masker);
      return (m && maskDateText(text, m, canon, key)) ?? null;
    }
    case T.timestamp:
    case T.timestamptz: {
      const m = temporalMasker(masker);
      return (m && maskTimestampText(text, m, canon, key)) ?? null;
    }
    case T.uuid:
      return maskUuidValue(text, canon, masker, key);
    case T.inet:
    case T.cidr:
      return maskInetValue(text, oid, canon, masker, key);
    case T.json:
    case T.jsonb:
      return maskJsonValue(text, canon, type, masker, key);
    case T.bytea:
      return maskByteaText(text, masker);
  }
  const elem = ARRAY_ELEMENT_OIDS[oid];
  if (elem !== undefined) return maskArrayValue(text, elem, type, masker, key);
  return null;
}

// ------------------------------------------------------------------------------ binary format

/** Shortest decimal spelling that reads back as the same float4. */
function float4Text(v: number): string {
  for (let p = 1; p <= 9; p++) {
    const s = v.toPrecision(p);
    if (Math.fround(Number(s)) === v) return String(Number(s));
  }
  return String(v);
}

const UTF8 = new TextDecoder('utf-8', { fatal: true });

/** Valid UTF-8 without control bytes other than tab/newline/CR: the binary form of citext, enums. */
function looksLikeText(raw: Buffer): boolean {
  for (const b of raw) if (b < 0x20 && b !== 0x09 && b !== 0x0a && b !== 0x0d) return false;
  try {
    UTF8.decode(raw);
    return true;
  } catch {
    return false;
  }
}

function maskBinary(raw: Buffer, oid: number, type: string, masker: MaskerName, key: Buffer): Buffer | null {
  const canon = canonicalType(type);
  if (oid >= FIRST_USER_OID && !looksLikeText(raw)) return null; // a binary structure (user arrays, composites…)
  if (isTextLike(oid) || oid === T.json) {
    const out = maskTextFormat(raw.toString('utf8'), oid >= FIRST_USER_OID ? T.text : oid, type, masker, key);
    return out === null ? null : Buffer.from(out, 'utf8');
  }
  switch (oid) {
    case T.jsonb: {
      if (raw.length < 1 || raw[0] !== 1) return null;
      const out = maskJsonValue(raw.subarray(1).toString('utf8'), canon, type, masker, key);
      return out === null ? null : Buffer.concat([Buffer.from([1]), Buffer.from(out, 'utf8')]);
    }
    case T.int2:
    case T.int4:
    case T.int8: {
      const width = oid === T.int2 ? 2 : oid === T.int4 ? 4 : 8;
      if (raw.length !== width) return null;
      const v = width === 2 ? raw.readInt16BE(0) : width === 4 ? raw.readInt32BE(0) : raw.readBigInt64BE(0);
      const out = maskNumberValue(v.toString(), oid, canon, masker, key);
      if (out === null) return null;
      const b = Buffer.alloc(width);
      const n = BigInt(out);
      const max = INT_LIMIT[oid].max;
      if (n > max || n < -max - 1n) return null;
      if (width === 2) b.writeInt16BE(Number(n), 0);
      else if (width === 4) b.writeInt32BE(Number(n), 0);
      else b.writeBigInt64BE(n, 0);
      return b;
    }
    case T.float4:
    case T.float8: {
      const width = oid === T.float4 ? 4 : 8;
      if (raw.length !== width) return null;
      const v = width === 4 ? raw.readFloatBE(0) : raw.readDoubleBE(0);
      if (!Number.isFinite(v)) return masker === 'hash' ? null : Buffer.from(raw);
      const out = maskNumberValue(width === 4 ? float4Text(v) : String(v), oid, canon, masker, key);
      if (out === null) return null;
      const b = Buffer.alloc(width);
      if (width === 4) b.writeFloatBE(Number(out), 0);
      else b.writeDoubleBE(Number(out), 0);
      return b;
    }
    case T.numeric: {
      const text = decodeNumeric(raw);
      if (text === undefined) {
        const special = raw.length === 8 && [0xc000, 0xd000, 0xf000].includes(raw.readUInt16BE(4));
        return special && masker !== 'hash' ? Buffer.from(raw) : null;
      }
      const out = maskNumberValue(text, oid, canon, masker, key);
      return out === null ? null : encodeNumeric(out);
    }
    case T.date: {
      const m = temporalMasker(masker);
      return (m && maskDateBinary(raw, m, canon, key)) ?? null;
    }
    case T.timestamp:
    case T.timestamptz: {
      const m = temporalMasker(masker);
      return (m && maskTimestampBinary(raw, m, canon, key)) ?? null;
    }
    case T.uuid: {
      if (raw.length !== 16 || masker === 'hash') return null;
      return masker === 'redact' ? Buffer.alloc(16) : fakeUuidBytes(uuidText(raw), canon, key, raw);
    }
    case T.inet:
    case T.cidr: {
      if (masker === 'hash' || raw.length < 4) return null;
      const [family, bits, isCidr, nb] = raw;
      const len = family === 2 ? 4 : family === 3 ? 16 : -1;
      if (nb !== len || raw.length !== 4 + nb || bits > nb * 8) return null;
      const addr = raw.subarray(4);
      const fresh = fakeAddress(addr, bits, isCidr === 1, `${formatIp(addr)}/${bits}`, canon, masker, key);
      return Buffer.concat([raw.subarray(0, 4), Buffer.from(fresh)]);
    }
    case T.bytea:
      return masker === 'redact' ? Buffer.alloc(raw.length, 0x2a) : null;
  }
  return null;
}

/**
 * Masks one cell of a column classified as sensitive type `type`. Returns the new cell bytes
 * in the same format, or null to send SQL NULL.
 */
export function maskCell(raw: Buffer, typeOid: number, format: 0 | 1, type: string, masker: MaskerName, key: Buffer): Buffer | null {
  if (masker === 'null') return null;
  if (format === 1) return maskBinary(raw, typeOid, type, masker, key);
  const out = maskTextFormat(raw.toString('utf8'), typeOid, type, masker, key);
  return out === null ? null : Buffer.from(out, 'utf8');
}

// ------------------------------------------------------------------------------ unclassified columns

/** Scanned as plain text besides the text-like types: text arrays (text format) and xml. */
const TEXT_ARRAY_OIDS: ReadonlySet<number> = new Set([1009, 1015, 1014, 1003]);
const XML_OID = 142;

function scan(text: string, detect: readonly string[], key: Buffer, maskerFor: (type: string) => MaskerName): string | undefined {
  const spans = findSensitive(text, detect);
  return spans.length === 0 ? undefined : maskSpans(text, spans, key, maskerFor);
}

/**
 * For columns not classified as sensitive: finds values of the `detect` types inside text-like
 * cells (and the string values of json/jsonb) and masks them in place. Returns `raw` itself
 * when nothing was found (or the type is not scanned), so the caller can skip re-encoding.
 */
export function maskCellSpans(
  raw: Buffer,
  typeOid: number,
  format: 0 | 1,
  detect: readonly string[],
  key: Buffer,
  maskerFor: (type: string) => MaskerName,
): Buffer {
  if (detect.length === 0 || raw.length < 3) return raw;
  if (typeOid === T.json || typeOid === T.jsonb) {
    const binaryJsonb = format === 1 && typeOid === T.jsonb;
    if (binaryJsonb && raw[0] !== 1) return raw;
    const text = (binaryJsonb ? raw.subarray(1) : raw).toString('utf8');
    let changed = false;
    const out = rewriteJson(text, {
      string: (s) => {
        const masked = scan(s, detect, key, maskerFor);
        if (masked === undefined) return s;
        changed = true;
        return masked;
      },
      number: (n) => n,
    });
    if (!changed || out === undefined) return raw;
    return binaryJsonb ? Buffer.concat([Buffer.from([1]), Buffer.from(out, 'utf8')]) : Buffer.from(out, 'utf8');
  }
  if (!isTextLike(typeOid) && typeOid !== XML_OID && !(format === 0 && TEXT_ARRAY_OIDS.has(typeOid))) return raw;
  if (format === 1 && typeOid >= FIRST_USER_OID && !looksLikeText(raw)) return raw;
  const text = raw.toString('utf8');
  const masked = scan(text, detect, key, maskerFor);
  if (masked === undefined) return raw;
  return Buffer.from(limitedLength(typeOid) ? fitLength(masked, charLength(text), typeOid) : masked, 'utf8');
}
