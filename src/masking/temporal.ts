/**
 * Dates and timestamps for cell masking: PostgreSQL's ISO text output (DateStyle ISO) and the
 * binary forms (date: int32 days since 2000-01-01; timestamp[tz]: int64 µs since then).
 *
 * Fakes shift the value by a deterministic offset of 1–365 days (seeded from the value), keep
 * the time zone suffix and fractional seconds as written; birthdates get a new adult birthdate.
 * Redact gives the PostgreSQL epoch 2000-01-01 (00:00:00). ±infinity is kept.
 * Anything that does not parse yields undefined (the caller sends NULL).
 */
import { seeded } from './random.js';

const DAY_S = 86_400;
/** Days from 1970-01-01 to 2000-01-01. */
const PG_EPOCH_DAYS = 10_957;

/** Proleptic Gregorian, astronomical years (1 BC = 0): days since 1970-01-01 (H. Hinnant). */
export function daysFromCivil(y: number, m: number, d: number): number {
  const yy = m <= 2 ? y - 1 : y;
  const era = Math.floor(yy / 400);
  const yoe = yy - era * 400;
  const doy = Math.floor((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5) + d - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146_097 + doe - 719_468;
}

export function civilFromDays(days: number): { y: number; m: number; d: number } {
  const z = days + 719_468;
  const era = Math.floor(z / 146_097);
  const doe = z - era * 146_097;
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36_524) - Math.floor(doe / 146_096)) / 365);
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const d = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const m = mp + (mp < 10 ? 3 : -9);
  return { y: yoe + era * 400 + (m <= 2 ? 1 : 0), m, d };
}

const pad = (n: number, w: number): string => String(n).padStart(w, '0');

/** `YYYY-MM-DD[ BC]` for days since 1970-01-01. */
export function formatDate(days: number): string {
  const { y, m, d } = civilFromDays(days);
  return y > 0 ? `${pad(y, 4)}-${pad(m, 2)}-${pad(d, 2)}` : `${pad(1 - y, 4)}-${pad(m, 2)}-${pad(d, 2)} BC`;
}

const DATE_RE = /^(\d{4,})-(\d{2})-(\d{2})( BC)?$/;

/** Days since 1970-01-01 of an ISO date text, or undefined. */
export function parseDate(text: string): number | undefined {
  const m = DATE_RE.exec(text);
  if (!m) return undefined;
  const y = m[4] ? 1 - Number(m[1]) : Number(m[1]);
  const mo = Number(m[2]);
  const d = Number(m[3]);
  const days = daysFromCivil(y, mo, d);
  const back = civilFromDays(days);
  return back.m === mo && back.d === d ? days : undefined;
}

function isBirthdate(type: string): boolean {
  return type === 'birthdate';
}

/** The deterministic day shift (never 0) for a value; birthdates: the new day itself. */
function fakeDays(days: number, type: string, seedText: string, key: Buffer): number {
  if (isBirthdate(type)) {
    const out = seeded(
      key,
      type,
      seedText,
      (f) => Math.floor(f.date.birthdate({ mode: 'age', min: 18, max: 90 }).getTime() / 86_400_000),
      (d) => d !== days,
    );
    return out ?? days + 1;
  }
  const shift = seeded(key, type, seedText, (f) => f.helpers.arrayElement([-1, 1]) * f.number.int({ min: 1, max: 365 }), () => true) ?? 1;
  return days + shift;
}

export type TemporalMasker = 'fake' | 'redact';

/** Masks a `date` text value. */
export function maskDateText(text: string, masker: TemporalMasker, type: string, key: Buffer): string | undefined {
  if (text === 'infinity' || text === '-infinity') return text;
  const days = parseDate(text);
  if (days === undefined) return undefined;
  return formatDate(masker === 'redact' ? PG_EPOCH_DAYS : fakeDays(days, type, text, key));
}

const PG_DATE_INFINITY = 0x7fffffff;
const PG_DATE_NEG_INFINITY = -0x80000000;

/** Masks a binary `date` (int32 days since 2000-01-01). */
export function maskDateBinary(raw: Buffer, masker: TemporalMasker, type: string, key: Buffer): Buffer | undefined {
  if (raw.length !== 4) return undefined;
  const pgDays = raw.readInt32BE(0);
  if (pgDays === PG_DATE_INFINITY || pgDays === PG_DATE_NEG_INFINITY) return Buffer.from(raw);
  const days = pgDays + PG_EPOCH_DAYS;
  const out = Buffer.alloc(4);
  out.writeInt32BE(masker === 'redact' ? 0 : fakeDays(days, type, formatDate(days), key) - PG_EPOCH_DAYS, 0);
  return out;
}

/** The deterministic shift in seconds (1–365 days, either sign, any second). */
function shiftSeconds(type: string, seedText: string, key: Buffer): number {
  return (
    seeded(
      key,
      type,
      seedText,
      (f) => f.helpers.arrayElement([-1, 1]) * f.number.int({ min: DAY_S, max: 365 * DAY_S }),
      () => true,
    ) ?? DAY_S
  );
}

const TS_RE = /^(\d{4,})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})(\.\d{1,6})?([+-]\d{2}(?::\d{2}){0,2})?( BC)?$/;

/** Masks a `timestamp`/`timestamptz` text value (ISO output; zone suffix and fraction kept). */
export function maskTimestampText(text: string, masker: TemporalMasker, type: string, key: Buffer): string | undefined {
  if (text === 'infinity' || text === '-infinity') return text;
  const m = TS_RE.exec(text);
  if (!m) return undefined;
  const days = parseDate(`${m[1]}-${m[2]}-${m[3]}${m[9] ?? ''}`);
  const h = Number(m[4]);
  const mi = Number(m[5]);
  const s = Number(m[6]);
  if (days === undefined || h > 23 || mi > 59 || s > 60) return undefined;
  const frac = m[7] ?? '';
  const zone = m[8] ?? '';
  if (masker === 'redact') return `2000-01-01 00:00:00${frac.replace(/\d/g, '0')}${zone}`;
  const total = days * DAY_S + h * 3600 + mi * 60 + s + shiftSeconds(type, text, key);
  const newDays = Math.floor(total / DAY_S);
  const sec = total - newDays * DAY_S;
  const date = formatDate(newDays);
  const bc = date.endsWith(' BC');
  const time = `${pad(Math.floor(sec / 3600), 2)}:${pad(Math.floor((sec % 3600) / 60), 2)}:${pad(sec % 60, 2)}`;
  return `${bc ? date.slice(0, -3) : date} ${time}${frac}${zone}${bc ? ' BC' : ''}`;
}

const PG_TS_INFINITY = 0x7fffffffffffffffn;
const PG_TS_NEG_INFINITY = -0x8000000000000000n;

/** Masks a binary `timestamp`/`timestamptz` (int64 µs since 2000-01-01). */
export function maskTimestampBinary(raw: Buffer, masker: TemporalMasker, type: string, key: Buffer): Buffer | undefined {
  if (raw.length !== 8) return undefined;
  const us = raw.readBigInt64BE(0);
  if (us === PG_TS_INFINITY || us === PG_TS_NEG_INFINITY) return Buffer.from(raw);
  const out = Buffer.alloc(8);
  out.writeBigInt64BE(masker === 'redact' ? 0n : us + BigInt(shiftSeconds(type, us.toString(), key)) * 1_000_000n, 0);
  return out;
}
