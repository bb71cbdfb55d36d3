/**
 * Masking of numbers written as text (int2/int4/int8/numeric/float4/float8 text output and
 * JSON numbers) and the binary `numeric` codec.
 *
 * The result keeps the sign, the decimal point, the exponent and the number of digits before
 * and after the point; only digits change:
 *   fake     digits from the seeded faker (no leading zero; a same-width integer never
 *            overflows its type: at the type's maximum width the first digit stays below
 *            the limit's first digit)
 *   partial  like fake, but the last four digits are kept (when there are more than four)
 *   redact   value-independent: `1` then zeros (`-42.17` → `-10.00`, `7` → `0`)
 * NaN and ±Infinity are returned unchanged (they identify nobody).
 */
import type { Faker } from '@faker-js/faker';
import { seeded } from './random.js';

const NUMBER_RE = /^([+-]?)(\d*)(?:\.(\d*))?([eE][+-]?\d+)?$/;

export type NumberMasker = 'fake' | 'partial' | 'redact';

export interface NumberLimit {
  /** Largest absolute integer value of the type (int2/int4/int8). */
  max: bigint;
}

export const INT_LIMITS = {
  int2: { max: 32767n },
  int4: { max: 2147483647n },
  int8: { max: 9223372036854775807n },
} as const;

/** True for the special float spellings we pass through. */
export function isSpecialNumber(s: string): boolean {
  return /^[+-]?(?:NaN|Infinity|inf)$/i.test(s);
}

function randomDigits(f: Faker, template: string, first: { min: number; max: number } | undefined): string {
  let out = '';
  for (let i = 0; i < template.length; i++) out += String(i === 0 && first ? f.number.int(first) : f.number.int(9));
  return out;
}

/**
 * The masked spelling of a number, or undefined when `s` is not a plain decimal number.
 * `seedType`/`key` seed the fake; `limit` bounds integers.
 */
export function maskNumberText(s: string, masker: NumberMasker, key: Buffer, seedType: string, limit?: NumberLimit): string | undefined {
  if (isSpecialNumber(s)) return s;
  const m = NUMBER_RE.exec(s);
  if (!m || (m[2] === '' && (m[3] ?? '') === '')) return undefined;
  const [, sign, int, frac = undefined, exp = ''] = m;
  const build = (i: string, f: string | undefined): string => `${sign}${i}${f === undefined ? '' : `.${f}`}${exp}`;
  if (masker === 'redact') {
    const i = int.length > 1 ? `1${'0'.repeat(int.length - 1)}` : int === '' ? '' : '0';
    return build(i, frac === undefined ? undefined : '0'.repeat(frac.length));
  }
  const maxText = limit?.max.toString();
  let first: { min: number; max: number } | undefined;
  if (int.length > 1) first = { min: 1, max: 9 };
  if (maxText && int.length >= maxText.length) first = { min: 1, max: Math.max(1, Number(maxText[0]) - 1) };
  const all = int + (frac ?? '');
  const keep = masker === 'partial' && all.length > 4 ? all.slice(-4) : '';
  const out = seeded(
    key,
    seedType,
    s,
    (f) => {
      const fresh = randomDigits(f, all.slice(0, all.length - keep.length), int.length > 0 ? first : undefined) + keep;
      return build(fresh.slice(0, int.length), frac === undefined ? undefined : fresh.slice(int.length));
    },
    (o) => o !== s || all.length === keep.length,
  );
  return out ?? build(int, frac);
}

// ------------------------------------------------------------------------------ binary numeric

const NUMERIC_POS = 0x0000;
const NUMERIC_NEG = 0x4000;

/** Decodes PostgreSQL's binary numeric to its text form, or undefined for NaN/±Infinity/garbage. */
export function decodeNumeric(buf: Buffer): string | undefined {
  if (buf.length < 8) return undefined;
  const ndigits = buf.readInt16BE(0);
  const weight = buf.readInt16BE(2);
  const sign = buf.readUInt16BE(4);
  const dscale = buf.readUInt16BE(6);
  if ((sign !== NUMERIC_POS && sign !== NUMERIC_NEG) || ndigits < 0 || buf.length !== 8 + ndigits * 2) return undefined;
  const digit = (i: number): number => (i >= 0 && i < ndigits ? buf.readInt16BE(8 + i * 2) : 0);
  let int = '';
  for (let i = 0; i <= weight; i++) int += i === 0 ? String(digit(i)) : String(digit(i)).padStart(4, '0');
  if (int === '') int = '0';
  let frac = '';
  for (let i = weight + 1; frac.length < dscale; i++) frac += String(digit(i)).padStart(4, '0');
  frac = frac.slice(0, dscale);
  return `${sign === NUMERIC_NEG ? '-' : ''}${int}${dscale > 0 ? `.${frac}` : ''}`;
}

/** Encodes a plain decimal text (`-12.340`) as binary numeric, keeping its scale. */
export function encodeNumeric(text: string): Buffer {
  const m = /^([+-]?)(\d*)(?:\.(\d*))?$/.exec(text);
  if (!m) throw new Error(`not a decimal: ${text}`);
  const negative = m[1] === '-';
  const int = m[2].replace(/^0+/, '');
  const frac = m[3] ?? '';
  const intPadded = int.padStart(Math.ceil(int.length / 4) * 4, '0');
  const fracPadded = frac.padEnd(Math.ceil(frac.length / 4) * 4, '0');
  const groups: number[] = [];
  for (let i = 0; i < intPadded.length; i += 4) groups.push(Number(intPadded.slice(i, i + 4)));
  for (let i = 0; i < fracPadded.length; i += 4) groups.push(Number(fracPadded.slice(i, i + 4)));
  let weight = intPadded.length / 4 - 1;
  while (groups.length > 0 && groups[0] === 0) {
    groups.shift();
    weight--;
  }
  while (groups.length > 0 && groups[groups.length - 1] === 0) groups.pop();
  if (groups.length === 0) weight = 0;
  const out = Buffer.alloc(8 + groups.length * 2);
  out.writeInt16BE(groups.length, 0);
  out.writeInt16BE(weight, 2);
  out.writeUInt16BE(negative && groups.length > 0 ? NUMERIC_NEG : NUMERIC_POS, 4);
  out.writeUInt16BE(frac.length, 6);
  groups.forEach((g, i) => out.writeInt16BE(g, 8 + i * 2));
  return out;
}
