/**
 * maskCell / maskCellSpans (src/masking/cell.ts): the masked cell stays a valid value of its
 * column type in text and binary format, never passes the original through, and respects
 * bpchar/varchar lengths; JSON stays parseable with its string leaves masked.
 */
import { Faker, base, en } from '@faker-js/faker';
import { describe, expect, it } from 'vitest';
import type { MaskerName } from '../../src/config/types.js';
import { ARRAY_ELEMENT_OIDS, FIRST_USER_OID, TYPE_OIDS as T, maskCell, maskCellSpans } from '../../src/masking/cell.js';
import { DETECTORS } from '../../src/masking/detectors.js';
import { maskText } from '../../src/masking/maskers.js';
import { formatIp, parseIp } from '../../src/masking/netaddr.js';
import { decodeNumeric, encodeNumeric } from '../../src/masking/numeric.js';
import { formatArrayLiteral, parseArrayLiteral } from '../../src/masking/pgarray.js';

const KEY = Buffer.from('cell-test-key');
const OTHER_KEY = Buffer.from('cell-test-key-2');
const gen = new Faker({ locale: [en, base] });
gen.seed(7);

/** Text-format helper: the masked cell as a string, or null. */
function text(value: string, oid: number, masker: MaskerName = 'fake', type = 'secret', key = KEY): string | null {
  const out = maskCell(Buffer.from(value, 'utf8'), oid, 0, type, masker, key);
  return out === null ? null : out.toString('utf8');
}

function binary(raw: Buffer, oid: number, masker: MaskerName = 'fake', type = 'secret', key = KEY): Buffer | null {
  return maskCell(raw, oid, 1, type, masker, key);
}

const charLen = (s: string): number => Array.from(s).length;
const PG_EPOCH_MS = Date.UTC(2000, 0, 1);

describe('masker null and non-maskable types', () => {
  it('null masker → SQL NULL for every type', () => {
    for (const oid of [T.text, T.int4, T.date, T.uuid, T.jsonb]) expect(maskCell(Buffer.from('1'), oid, 0, 'x', 'null', KEY)).toBeNull();
  });
  it('bool → NULL; built-in types we cannot re-encode → NULL, never the original', () => {
    expect(text('t', T.bool)).toBeNull();
    expect(binary(Buffer.from([1]), T.bool)).toBeNull();
    expect(text('10:30:00', 1083)).toBeNull(); // time
    expect(text('1 day', 1186)).toBeNull(); // interval
    expect(text('$1.00', 790)).toBeNull(); // money
    expect(binary(Buffer.from('00:00', 'utf8'), 1083)).toBeNull();
  });
});

describe('text-like columns', () => {
  it('text: maskText semantics', () => {
    expect(text('ann@example.com', T.text, 'fake', 'email')).toBe(maskText('ann@example.com', 'email', 'fake', KEY));
    expect(text('123-45-6789', T.text, 'partial')).toBe('***-**-6789');
    expect(text('abc', T.text, 'hash')).toMatch(/^[0-9a-f]{32}$/);
  });
  it('bpchar keeps its length in characters (padded or truncated)', () => {
    for (const masker of ['fake', 'partial', 'hash', 'redact'] as const) {
      for (const v of ['AB   ', 'ann@example.com     ', 'Zoë', 'X']) {
        const out = text(v, T.bpchar, masker, 'email')!;
        expect(charLen(out)).toBe(charLen(v));
      }
    }
    expect(text('     ', T.bpchar, 'fake', 'name')).toBe('     ');
  });
  it('varchar never grows (fakes and hashes are truncated)', () => {
    for (const v of originalEmails()) {
      for (const masker of ['fake', 'hash'] as const) {
        const out = text(v, T.varchar, masker, 'email')!;
        expect(charLen(out)).toBeLessThanOrEqual(charLen(v));
        expect(out).not.toBe(v);
      }
    }
    expect(text('ab', T.varchar, 'hash')).toHaveLength(2);
  });
  it('binary format of text types is the same UTF-8', () => {
    const raw = Buffer.from('Zürich', 'utf8');
    expect(binary(raw, T.text, 'redact')!.toString('utf8')).toBe('******');
    expect(binary(raw, T.varchar, 'fake', 'city')!.toString('utf8')).toBe(text('Zürich', T.varchar, 'fake', 'city'));
  });
  it('non-built-in OIDs (citext, enums) are text; their binary structures are not', () => {
    expect(text('Ann@Example.com', FIRST_USER_OID + 7, 'redact')).toBe('***************');
    expect(binary(Buffer.from('Ann@Example.com'), FIRST_USER_OID + 7, 'partial')!.toString()).toBe('***@******e.com');
    const arrayHeader = Buffer.from([0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 25]);
    expect(binary(arrayHeader, FIRST_USER_OID + 8, 'redact')).toBeNull();
  });
});

function originalEmails(): string[] {
  return Array.from({ length: 100 }, () => gen.internet.email());
}

describe('numeric columns (text format)', () => {
  it('same width, sign and decimal point; digits replaced; deterministic', () => {
    const cases: [string, number][] = [
      ['12345', T.int4],
      ['-42', T.int2],
      ['-42.170', T.numeric],
      ['0.000123', T.numeric],
      ['3.14159', T.float8],
      ['1.5e+20', T.float8],
      ['2.5', T.float4],
    ];
    for (const [v, oid] of cases) {
      const out = text(v, oid)!;
      expect(out).not.toBe(v);
      expect(out.replace(/\d/g, '9')).toBe(v.replace(/\d/g, '9'));
      expect(text(v, oid)).toBe(out);
      expect(Number.isFinite(Number(out))).toBe(true);
    }
  });
  it('integers at the maximum width never overflow their type', () => {
    const limits: [number, bigint, string][] = [
      [T.int2, 32767n, '32767'],
      [T.int4, 2147483647n, '2147483647'],
      [T.int8, 9223372036854775807n, '9223372036854775807'],
    ];
    for (const [oid, max, v] of limits) {
      for (let i = 0; i < 100; i++) {
        const input = `${v.slice(0, -2)}${String(i).padStart(2, '0')}`;
        const out = BigInt(text(input, oid)!);
        expect(out <= max).toBe(true);
        expect(String(out)).toHaveLength(v.length);
      }
    }
  });
  it('partial keeps the last four digits; redact is value-independent; hash → NULL', () => {
    const p = text('123456789', T.int8, 'partial')!;
    expect(p).toMatch(/^[1-9]\d{4}6789$/);
    expect(text('-42.17', T.numeric, 'redact')).toBe('-10.00');
    expect(text('98765', T.int4, 'redact')).toBe('10000');
    expect(text('7', T.int4, 'hash')).toBeNull();
  });
  it('NaN and Infinity are kept; garbage → NULL', () => {
    expect(text('NaN', T.float8)).toBe('NaN');
    expect(text('-Infinity', T.float8)).toBe('-Infinity');
    expect(text('12abc', T.int4)).toBeNull();
  });
});

describe('numeric columns (binary format)', () => {
  it('int2 / int4 / int8 round trip to a different value of the same width', () => {
    for (let i = 0; i < 200; i++) {
      const v4 = gen.number.int({ min: -2147483648, max: 2147483647 });
      const raw = Buffer.alloc(4);
      raw.writeInt32BE(v4);
      const out = binary(raw, T.int4)!;
      expect(out).toHaveLength(4);
      const back = out.readInt32BE(0);
      expect(back).not.toBe(v4);
      expect(String(Math.abs(back))).toHaveLength(String(Math.abs(v4)).length);
      expect(Math.sign(back) || 1).toBe(Math.sign(v4) || 1);
    }
    const r2 = Buffer.alloc(2);
    r2.writeInt16BE(-32768);
    expect(binary(r2, T.int2)!.readInt16BE(0)).toBeGreaterThanOrEqual(-32768);
    const r8 = Buffer.alloc(8);
    r8.writeBigInt64BE(9223372036854775807n);
    const o8 = binary(r8, T.int8)!.readBigInt64BE(0);
    expect(o8).not.toBe(9223372036854775807n);
    expect(String(o8)).toHaveLength(19);
  });
  it('wrong widths → NULL', () => {
    expect(binary(Buffer.alloc(3), T.int4)).toBeNull();
    expect(binary(Buffer.alloc(4), T.int8)).toBeNull();
  });
  it('float4 / float8 round trip', () => {
    const f8 = Buffer.alloc(8);
    f8.writeDoubleBE(1234.5678);
    const o8 = binary(f8, T.float8)!.readDoubleBE(0);
    expect(o8).not.toBe(1234.5678);
    expect(o8).toBeGreaterThanOrEqual(1000);
    expect(o8).toBeLessThan(10000);
    const f4 = Buffer.alloc(4);
    f4.writeFloatBE(3.25);
    const o4 = binary(f4, T.float4)!.readFloatBE(0);
    expect(o4).not.toBe(3.25);
    expect(Number.isFinite(o4)).toBe(true);
    const max4 = Buffer.alloc(4);
    max4.writeFloatBE(3.4e38);
    expect(Number.isFinite(binary(max4, T.float4)!.readFloatBE(0))).toBe(true);
  });
  it('numeric codec round-trips and masked values keep their scale', () => {
    for (const v of ['0', '1', '-1', '12345.6789', '0.0001', '0.00000001', '10000', '-98765432109876543210.5', '3.140']) {
      expect(decodeNumeric(encodeNumeric(v))).toBe(v);
    }
    const out = decodeNumeric(binary(encodeNumeric('-12345.670'), T.numeric)!)!;
    expect(out).toMatch(/^-[1-9]\d{4}\.\d{3}$/);
    expect(out).not.toBe('-12345.670');
    const nan = Buffer.from([0, 0, 0, 0, 0xc0, 0, 0, 0]);
    expect(binary(nan, T.numeric)).toEqual(nan);
  });
});

describe('dates and timestamps', () => {
  it('date text → another valid date, deterministic, key-dependent', () => {
    for (let i = 0; i < 200; i++) {
      const v = gen.date.between({ from: '1950-01-01', to: '2030-12-31' }).toISOString().slice(0, 10);
      const out = text(v, T.date)!;
      expect(out).toMatch(/^\d{4}-\d{2}-\d{2}$/);
      expect(new Date(`${out}T00:00:00Z`).toISOString().slice(0, 10)).toBe(out);
      expect(out).not.toBe(v);
      expect(Math.abs(Date.parse(out) - Date.parse(v))).toBeLessThanOrEqual(365 * 86_400_000);
    }
    expect(text('2024-02-29', T.date)).toBe(text('2024-02-29', T.date));
    expect(text('2024-02-29', T.date, 'fake', 'secret', OTHER_KEY)).not.toBe(text('2024-02-29', T.date));
  });
  it('date edge forms', () => {
    expect(text('infinity', T.date)).toBe('infinity');
    expect(text('0044-03-15 BC', T.date)).toMatch(/^\d{4}-\d{2}-\d{2} BC$/);
    expect(text('2024-02-30', T.date)).toBeNull();
    expect(text('15/01/2024', T.date)).toBeNull();
    expect(text('2024-01-15', T.date, 'redact')).toBe('2000-01-01');
    expect(text('2024-01-15', T.date, 'hash')).toBeNull();
  });
  it('birthdate-typed date columns get an adult birthdate', () => {
    const out = text('1990-06-01', T.date, 'fake', 'birthdate')!;
    const year = Number(out.slice(0, 4));
    expect(year).toBeGreaterThanOrEqual(1934);
    expect(year).toBeLessThanOrEqual(2007);
  });
  it('binary date (int32 days since 2000-01-01) round trip', () => {
    const raw = Buffer.alloc(4);
    raw.writeInt32BE(8780); // 2024-01-15
    const out = binary(raw, T.date)!;
    const days = out.readInt32BE(0);
    expect(days).not.toBe(8780);
    expect(Math.abs(days - 8780)).toBeLessThanOrEqual(365);
    // The same value masked in text format lands on the same day.
    const asText = new Date(PG_EPOCH_MS + days * 86_400_000).toISOString().slice(0, 10);
    expect(text('2024-01-15', T.date)).toBe(asText);
    const inf = Buffer.from([0x7f, 0xff, 0xff, 0xff]);
    expect(binary(inf, T.date)).toEqual(inf);
  });
  it('timestamp text keeps the format (fraction, zone)', () => {
    for (const v of ['2024-01-15 10:30:00', '2024-01-15 10:30:00.123456', '2024-01-15 23:59:59+00', '2024-06-01 00:00:00.5-08', '2024-01-15 10:30:00+05:30']) {
      for (const oid of [T.timestamp, T.timestamptz]) {
        const out = text(v, oid)!;
        expect(out).not.toBe(v);
        const shape = (s: string): string => s.replace(/\d/g, '9');
        expect(shape(out)).toBe(shape(v));
        expect(Number.isNaN(Date.parse(out.slice(0, 19).replace(' ', 'T') + 'Z'))).toBe(false);
        const shift = Math.abs(Date.parse(out.slice(0, 19).replace(' ', 'T') + 'Z') - Date.parse(v.slice(0, 19).replace(' ', 'T') + 'Z'));
        expect(shift).toBeGreaterThanOrEqual(86_400_000);
        expect(shift).toBeLessThanOrEqual(365 * 86_400_000);
      }
    }
    expect(text('January 15, 2024', T.timestamp)).toBeNull();
  });
  it('binary timestamp (int64 µs) round trip', () => {
    const us = BigInt(Date.UTC(2024, 0, 15, 10, 30) - PG_EPOCH_MS) * 1000n + 123n;
    const raw = Buffer.alloc(8);
    raw.writeBigInt64BE(us);
    const out = binary(raw, T.timestamptz)!.readBigInt64BE(0);
    expect(out).not.toBe(us);
    expect(out % 1_000_000n).toBe(123n); // whole-second shift keeps the microseconds
    const delta = out > us ? out - us : us - out;
    expect(delta >= 86_400_000_000n && delta <= 365n * 86_400_000_000n).toBe(true);
    expect(binary(Buffer.alloc(7), T.timestamp)).toBeNull();
  });
});

describe('uuid', () => {
  const v4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
  it('text → deterministic v4-shaped uuid', () => {
    const v = '550e8400-e29b-41d4-a716-446655440000';
    const out = text(v, T.uuid)!;
    expect(out).toMatch(v4);
    expect(out).not.toBe(v);
    expect(text(v, T.uuid)).toBe(out);
    expect(text(v, T.uuid, 'fake', 'secret', OTHER_KEY)).not.toBe(out);
    expect(text(v, T.uuid, 'redact')).toBe('00000000-0000-0000-0000-000000000000');
    expect(text(v, T.uuid, 'hash')).toBeNull();
    expect(text('not-a-uuid', T.uuid)).toBeNull();
  });
  it('binary 16 bytes round trip, consistent with text', () => {
    const bytes = Buffer.from('550e8400e29b41d4a716446655440000', 'hex');
    const out = binary(bytes, T.uuid)!;
    expect(out).toHaveLength(16);
    expect(out.equals(bytes)).toBe(false);
    const hex = out.toString('hex');
    expect(`${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`).toMatch(v4);
    expect(text('550e8400-e29b-41d4-a716-446655440000', T.uuid)).toBe(
      `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`,
    );
    expect(binary(Buffer.alloc(15), T.uuid)).toBeNull();
  });
});

describe('inet / cidr', () => {
  it('text keeps the family and prefix; cidr host bits are zero', () => {
    const v4 = text('192.168.1.5', T.inet)!;
    expect(v4).toMatch(/^\d{1,3}(\.\d{1,3}){3}$/);
    expect(v4).not.toBe('192.168.1.5');
    expect(text('fe80::1/64', T.inet)).toMatch(/^[0-9a-f:]+\/64$/);
    for (let i = 0; i < 50; i++) {
      const out = text(`10.${i}.0.0/16`, T.cidr)!;
      expect(out).toMatch(/^\d+\.\d+\.0\.0\/16$/);
    }
    expect(text('2001:db8::/32', T.cidr)).toMatch(/^[0-9a-f]{1,4}:[0-9a-f]{1,4}::\/32$|^[0-9a-f]{1,4}::\/32$|^::\/32$/);
    expect(text('10.0.0.1', T.inet, 'redact')).toBe('0.0.0.0');
    expect(text('nonsense', T.inet)).toBeNull();
  });
  it('binary keeps the header and length', () => {
    const raw = Buffer.from([2, 24, 1, 4, 192, 168, 7, 0]);
    const out = binary(raw, T.cidr)!;
    expect(out.subarray(0, 4)).toEqual(raw.subarray(0, 4));
    expect(out).toHaveLength(8);
    expect(out[7]).toBe(0);
    expect(out.subarray(4, 7).equals(raw.subarray(4, 7))).toBe(false);
    const v6 = Buffer.concat([Buffer.from([3, 128, 0, 16]), Buffer.alloc(16, 1)]);
    const o6 = binary(v6, T.inet)!;
    expect(o6).toHaveLength(20);
    expect(o6.subarray(4).equals(v6.subarray(4))).toBe(false);
    expect(binary(Buffer.from([2, 32, 0, 16, 1, 2, 3, 4]), T.inet)).toBeNull();
  });
});

describe('json / jsonb', () => {
  const doc = '{"email": "ann@example.com", "tags": ["vip", "x"], "n": 42, "price": 12.50, "ok": true, "none": null, "nested": {"k": "secret value"}}';
  it('stays parseable; keys, booleans and nulls kept; every string leaf masked', () => {
    for (const oid of [T.json, T.jsonb]) {
      const out = text(doc, oid, 'fake', 'email')!;
      const parsed = JSON.parse(out) as Record<string, unknown>;
      const orig = JSON.parse(doc) as Record<string, unknown>;
      expect(Object.keys(parsed)).toEqual(Object.keys(orig));
      expect(parsed.email).toBe(maskText('ann@example.com', 'email', 'fake', KEY));
      expect(parsed.tags).toHaveLength(2);
      expect(parsed.tags).not.toContain('vip');
      expect(parsed.ok).toBe(true);
      expect(parsed.none).toBeNull();
      expect((parsed.nested as Record<string, unknown>).k).not.toBe('secret value');
      expect(typeof parsed.n).toBe('number');
      expect(parsed.n).not.toBe(42);
      expect(out).toContain('"price": ');
    }
  });
  it('redact / partial / hash on leaves', () => {
    expect(JSON.parse(text('{"a": "abc", "b": [1, "xy"]}', T.jsonb, 'redact')!)).toEqual({ a: '***', b: [0, '**'] });
    expect(JSON.parse(text('{"ssn": "123-45-6789"}', T.json, 'partial')!)).toEqual({ ssn: '***-**-6789' });
    const hashed = JSON.parse(text('{"a": "x", "n": 5}', T.json, 'hash')!) as { a: string; n: unknown };
    expect(hashed.a).toMatch(/^[0-9a-f]{32}$/);
    expect(hashed.n).toBeNull();
  });
  it('escapes in strings survive', () => {
    const out = text('{"q": "say \\"hi\\"\\n"}', T.json, 'redact')!;
    expect(JSON.parse(out)).toEqual({ q: '*'.repeat('say "hi"\n'.length) });
  });
  it('binary jsonb carries the version byte; invalid JSON → NULL', () => {
    const raw = Buffer.concat([Buffer.from([1]), Buffer.from('{"a": "abc"}')]);
    const out = binary(raw, T.jsonb, 'redact')!;
    expect(out[0]).toBe(1);
    expect(JSON.parse(out.subarray(1).toString())).toEqual({ a: '***' });
    expect(binary(Buffer.from('{"a": "abc"}'), T.jsonb, 'redact')).toBeNull();
    expect(text('{not json', T.json)).toBeNull();
  });
});

describe('arrays (text format)', () => {
  it('masks element by element and keeps NULLs', () => {
    const out = text('{ann@example.com,NULL,"b c"}', 1009, 'redact')!;
    expect(out).toBe('{"***************",NULL,"***"}');
    const ints = text('{1,22,333}', 1007)!;
    expect(ints).toMatch(/^\{"\d","[1-9]\d","[1-9]\d\d"\}$/);
    expect(ints).not.toBe('{"1","22","333"}');
    expect(text('{{1,2},{3,4}}', 1007)).toBeNull();
    expect(ARRAY_ELEMENT_OIDS[1009]).toBe(T.text);
  });
  it('binary arrays → NULL', () => {
    expect(binary(Buffer.from([0, 0, 0, 1]), 1009)).toBeNull();
  });
});

describe('bytea', () => {
  it('redact → same number of 0x2a bytes; other maskers → NULL', () => {
    expect(text('\\x0102ff', T.bytea, 'redact')).toBe('\\x2a2a2a');
    expect(text('ab\\\\c\\001', T.bytea, 'redact')).toBe('\\x2a2a2a2a2a');
    expect(text('\\x0102ff', T.bytea, 'fake')).toBeNull();
    expect(binary(Buffer.from([0, 1, 2]), T.bytea, 'redact')).toEqual(Buffer.from('***'));
    expect(binary(Buffer.from([0, 1, 2]), T.bytea, 'hash')).toBeNull();
  });
});

describe('maskCellSpans (unclassified columns)', () => {
  const maskerFor = (): MaskerName => 'redact';
  it('returns the very same Buffer when nothing is found', () => {
    const raw = Buffer.from('nothing to see here, order ORD-2024-0001');
    expect(maskCellSpans(raw, T.text, 0, DETECTORS, KEY, maskerFor)).toBe(raw);
    const n = Buffer.from('4242424242424242');
    expect(maskCellSpans(n, T.int8, 0, DETECTORS, KEY, maskerFor)).toBe(n);
    const t = Buffer.from('ann@example.com');
    expect(maskCellSpans(t, T.text, 0, [], KEY, maskerFor)).toBe(t);
  });
  it('replaces the spans inside text', () => {
    const raw = Buffer.from('mail ann@example.com, ssn 123-45-6789');
    const out = maskCellSpans(raw, T.text, 0, ['email', 'ssn'], KEY, (t) => (t === 'ssn' ? 'partial' : 'fake'));
    expect(out).not.toBe(raw);
    const s = out.toString();
    expect(s).not.toContain('ann@example.com');
    expect(s).toMatch(/^mail \S+@\S+, ssn \*\*\*-\*\*-6789$/);
  });
  it('only scans with the enabled detectors', () => {
    const raw = Buffer.from('mail ann@example.com, ssn 123-45-6789');
    expect(maskCellSpans(raw, T.text, 0, ['ssn'], KEY, maskerFor).toString()).toBe('mail ann@example.com, ssn ***********');
  });
  it('keeps varchar/bpchar length rules', () => {
    const raw = Buffer.from('x a@b.io');
    const out = maskCellSpans(raw, T.varchar, 0, ['email'], KEY, () => 'fake').toString();
    expect(charLen(out)).toBeLessThanOrEqual(8);
    const padded = Buffer.from('a@b.io    ');
    expect(charLen(maskCellSpans(padded, T.bpchar, 1, ['email'], KEY, () => 'fake').toString())).toBe(10);
  });
  it('scans the string values of json and jsonb (binary too), keys kept', () => {
    const doc = '{"ann@example.com": "write to ann@example.com", "n": 4242424242424242}';
    const out = maskCellSpans(Buffer.from(doc), T.json, 0, DETECTORS, KEY, maskerFor).toString();
    expect(JSON.parse(out)).toEqual({ 'ann@example.com': 'write to ***************', n: 4242424242424242 });
    const bin = Buffer.concat([Buffer.from([1]), Buffer.from(doc)]);
    const outBin = maskCellSpans(bin, T.jsonb, 1, DETECTORS, KEY, maskerFor);
    expect(outBin[0]).toBe(1);
    expect(JSON.parse(outBin.subarray(1).toString())).toEqual({ 'ann@example.com': 'write to ***************', n: 4242424242424242 });
    const clean = Buffer.from('{"a": "b"}');
    expect(maskCellSpans(clean, T.jsonb, 0, DETECTORS, KEY, maskerFor)).toBe(clean);
  });
  it('null maskers become redact inside text', () => {
    const out = maskCellSpans(Buffer.from('ip 10.1.2.3'), T.text, 0, DETECTORS, KEY, () => 'null');
    expect(out.toString()).toBe('ip ********');
  });
});

describe('helpers', () => {
  it('IPv6 parse/format round trip (RFC 5952 compression)', () => {
    const cases: [string, string][] = [
      ['2001:0db8:0000:0000:0000:ff00:0042:8329', '2001:db8::ff00:42:8329'],
      ['::1', '::1'],
      ['::', '::'],
      ['fe80::', 'fe80::'],
      ['::ffff:192.0.2.128', '::ffff:c000:280'],
      ['1:0:0:2:0:0:0:3', '1:0:0:2::3'],
      ['1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8'],
    ];
    for (const [input, expected] of cases) expect(formatIp(parseIp(input)!)).toBe(expected);
    expect(parseIp('1.2.3')).toBeUndefined();
  });
  it('array literals: quotes and backslashes survive masking', () => {
    expect(parseArrayLiteral('{"a\\"b","c\\\\d",NULL,"NULL",e}')).toEqual(['a"b', 'c\\d', null, 'NULL', 'e']);
    expect(formatArrayLiteral(['a"b', 'c\\d', null])).toBe('{"a\\"b","c\\\\d",NULL}');
    expect(parseArrayLiteral('{a,b')).toBeUndefined();
  });
});

describe('never the original', () => {
  it('fake output differs from the input across types and formats', () => {
    const cases: [string, number][] = [
      ['hello', T.text],
      ['hello', T.varchar],
      ['hello     ', T.bpchar],
      ['5', T.int4],
      ['0', T.int2],
      ['0.5', T.numeric],
      ['2024-01-01', T.date],
      ['2024-01-01 00:00:00', T.timestamp],
      ['00000000-0000-0000-0000-000000000000', T.uuid],
      ['0.0.0.1', T.inet],
      ['{"a": "b"}', T.json],
    ];
    const textInBinary = new Set<number>([T.text, T.varchar, T.bpchar, T.json]);
    for (const [v, oid] of cases) {
      for (const format of [0, 1] as const) {
        if (format === 1 && !textInBinary.has(oid)) continue;
        const out = maskCell(Buffer.from(v), oid, format, 'secret', 'fake', KEY);
        expect(out).not.toBeNull();
        expect(out!.toString()).not.toBe(v);
      }
    }
  });
  it('xml is scanned for spans too', () => {
    const raw = Buffer.from('<c><mail>ann@example.com</mail></c>');
    expect(maskCellSpans(raw, 142, 0, ['email'], KEY, () => 'redact').toString()).toBe('<c><mail>***************</mail></c>');
  });
});
