/**
 * Canonical JSON encoding used for audit-record hashing and checkpoint signing.
 *
 * The same logical value always encodes to the same string:
 * - object members are sorted by key, comparing UTF-16 code units (the default
 *   `Array.prototype.sort` order, which is also what JCS / RFC 8785 uses);
 * - no whitespace anywhere;
 * - strings are encoded exactly as `JSON.stringify` does (lone surrogates become
 *   `\udxxx` escapes, so the output is always well-formed);
 * - numbers are encoded as `JSON.stringify` does (`-0` becomes `0`) and must be
 *   finite — `NaN` and `±Infinity` throw;
 * - object members whose value is `undefined` are dropped;
 * - arrays keep their order; an `undefined` array element throws (plain JSON
 *   would silently turn it into `null`).
 *
 * Only plain objects (prototype `Object.prototype` or `null`) and arrays are
 * accepted as containers; `Date`, `Map`, class instances, `bigint`, functions,
 * symbols and cyclic structures throw a `TypeError` naming the offending path.
 */

/** A JSON scalar. */
export type JsonPrimitive = string | number | boolean | null;

/** A JSON value. `undefined` object members are allowed and dropped when encoding. */
export type JsonValue = JsonPrimitive | JsonValue[] | { [key: string]: JsonValue | undefined };

/**
 * A value already encoded as canonical JSON, emitted verbatim: lets the audit
 * hot path encode the parts of a record that repeat (a statement's tables and
 * decision) once, and splice them into each record. The text must be what
 * `canonicalJson` would produce for the value it stands for.
 */
export class CanonicalText {
  constructor(readonly text: string) {}
  /** Encodes `value` once, for splicing. */
  static of(value: EncodableValue): CanonicalText {
    return new CanonicalText(canonicalJson(value));
  }
}

/** What `canonicalJson` accepts: JSON, with pre-encoded parts. */
export type EncodableValue = JsonPrimitive | CanonicalText | EncodableValue[] | { [key: string]: EncodableValue | undefined };

/** Encodes `value` as canonical JSON (see module docs). Throws `TypeError` on non-JSON input. */
export function canonicalJson(value: EncodableValue): string {
  // The fast encoder builds no error paths; on any problem the careful one
  // (below) runs again to throw with the offending path.
  try {
    return fast(value, 0);
  } catch {
    return encode(value, '$', []);
  }
}

/** Depth beyond which a structure is taken as cyclic by the fast path. */
const MAX_FAST_DEPTH = 64;

function fast(value: unknown, depth: number): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError('non-finite');
      return JSON.stringify(value);
    case 'object':
      break;
    default:
      throw new TypeError('unsupported');
  }
  if (value instanceof CanonicalText) return value.text;
  if (depth > MAX_FAST_DEPTH) throw new TypeError('too deep');
  if (Array.isArray(value)) {
    let out = '[';
    for (let i = 0; i < value.length; i++) {
      const item: unknown = value[i];
      if (item === undefined) throw new TypeError('undefined element');
      out += (i === 0 ? '' : ',') + fast(item, depth + 1);
    }
    return out + ']';
  }
  const proto: unknown = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) throw new TypeError('unsupported object');
  const record = value as Record<string, unknown>;
  const keys = Object.keys(record).sort();
  let out = '{';
  let first = true;
  for (const key of keys) {
    const member = record[key];
    if (member === undefined) continue;
    out += (first ? '' : ',') + JSON.stringify(key) + ':' + fast(member, depth + 1);
    first = false;
  }
  return out + '}';
}

function encode(value: unknown, path: string, stack: object[]): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      if (!Number.isFinite(value)) {
        throw new TypeError(`canonicalJson: non-finite number ${String(value)} at ${path}`);
      }
      return JSON.stringify(value);
    case 'object':
      break;
    default:
      throw new TypeError(`canonicalJson: unsupported ${typeof value} at ${path}`);
  }
  if (value instanceof CanonicalText) return value.text;
  const obj = value as object;
  if (stack.includes(obj)) throw new TypeError(`canonicalJson: cyclic structure at ${path}`);
  stack.push(obj);
  try {
    if (Array.isArray(obj)) {
      const parts: string[] = [];
      for (let i = 0; i < obj.length; i++) {
        const item: unknown = obj[i];
        if (item === undefined) {
          throw new TypeError(`canonicalJson: undefined array element at ${path}[${i}]`);
        }
        parts.push(encode(item, `${path}[${i}]`, stack));
      }
      return `[${parts.join(',')}]`;
    }
    const proto: unknown = Object.getPrototypeOf(obj);
    if (proto !== Object.prototype && proto !== null) {
      const name = (obj as { constructor?: { name?: unknown } }).constructor?.name;
      throw new TypeError(
        `canonicalJson: unsupported object${typeof name === 'string' ? ` (${name})` : ''} at ${path}`,
      );
    }
    const record = obj as Record<string, unknown>;
    const parts: string[] = [];
    for (const key of Object.keys(record).sort()) {
      const member = record[key];
      if (member === undefined) continue;
      parts.push(`${JSON.stringify(key)}:${encode(member, `${path}.${key}`, stack)}`);
    }
    return `{${parts.join(',')}}`;
  } finally {
    stack.pop();
  }
}
