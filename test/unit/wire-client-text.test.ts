/** ClientText: SQL texts read as PostgreSQL will read them, or refused with the reason. */
import { describe, expect, it } from 'vitest';
import { ClientText, canonicalEncoding, isDecodableEncoding, type UnreadableText } from '../../src/wire/client-text.js';

const params = (o: Record<string, string>): Map<string, string> => new Map(Object.entries({ server_encoding: 'UTF8', client_encoding: 'UTF8', standard_conforming_strings: 'on', ...o }));
const read = (t: ClientText, b: Buffer): string | UnreadableText => t.read(b, 0, b.length);
const bytes = (...parts: (string | number[])[]): Buffer => Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'latin1') : Buffer.from(p))));

describe('canonical encoding names', () => {
  it('folds case, dashes and aliases as PostgreSQL does', () => {
    expect(canonicalEncoding('utf-8')).toBe('UTF8');
    expect(canonicalEncoding('Unicode')).toBe('UTF8');
    expect(canonicalEncoding('sql_ascii')).toBe('SQL_ASCII');
    expect(canonicalEncoding('big5')).toBe('BIG5');
    expect(canonicalEncoding('ShiftJIS')).toBe('SJIS');
    expect(canonicalEncoding('iso-8859-1')).toBe('LATIN1');
    expect(canonicalEncoding('cp1252')).toBe('WIN1252');
    expect(isDecodableEncoding('BIG5')).toBe(true);
    expect(isDecodableEncoding('JOHAB')).toBe(false);
    expect(isDecodableEncoding('EUC_TW')).toBe(false);
  });
});

describe('the fast path', () => {
  it('UTF8 with standard_conforming_strings on reads UTF-8, backslashes and all', () => {
    const t = new ClientText(params({}));
    expect(t.fast).toBe(true);
    expect(read(t, Buffer.from("SELECT E'caf\\u00e9', 'é\\'"))).toBe("SELECT E'caf\\u00e9', 'é\\'");
  });
});

describe('multi-byte client encodings whose second bytes can be ASCII', () => {
  const evil = (lead: number[]): Buffer => bytes("SELECT E'", lead, [0x5c], "'; DELETE FROM victim; -- '");
  it.each([
    ['BIG5', [0xa4]],
    ['SJIS', [0x95]],
    ['GBK', [0x81]],
    ['GB18030', [0x81]],
  ])('%s: the backslash byte is part of a character, so the string closes and the DELETE is seen', (enc, lead) => {
    const t = new ClientText(params({ client_encoding: enc }));
    expect(t.fast).toBe(false);
    const s = read(t, evil(lead));
    expect(typeof s).toBe('string');
    expect(s as string).toMatch(/^SELECT E'[^\\']'; DELETE FROM victim; -- '$/);
  });

  it('an invalid byte sequence is refused (22021), as PostgreSQL would', () => {
    const t = new ClientText(params({ client_encoding: 'SJIS' }));
    expect(read(t, bytes("SELECT '", [0x80, 0x27], "'"))).toMatchObject({ code: '22021' });
  });

  it("a decoder that splits a character PostgreSQL reads whole is caught (UHC's extension through the EUC-KR decoder)", () => {
    const t = new ClientText(params({ client_encoding: 'UHC' }));
    // 0x81 0x41 is one UHC character to PostgreSQL; Node's EUC-KR decoder reads U+0081 then "A".
    expect(read(t, bytes("SELECT '", [0x81, 0x41], "'"))).toMatchObject({ code: '0A000' });
  });

  it('ASCII-only text needs no decoder at all', () => {
    const t = new ClientText(params({ client_encoding: 'JOHAB' }));
    expect(read(t, Buffer.from('SELECT 1'))).toBe('SELECT 1');
  });

  it('non-ASCII text in an encoding Warden cannot decode is refused (0A000)', () => {
    const t = new ClientText(params({ client_encoding: 'JOHAB' }));
    const r = read(t, bytes("SELECT '", [0x88, 0x61], "'"));
    expect(r).toMatchObject({ code: '0A000' });
    expect((r as UnreadableText).message).toContain('JOHAB');
  });

  it('LATIN1 is ISO 8859-1 exactly', () => {
    const t = new ClientText(params({ client_encoding: 'LATIN1' }));
    expect(read(t, bytes("SELECT 'caf", [0xe9], "', '", [0x85], "'"))).toBe("SELECT 'café', '\u0085'");
  });

  it('with a SQL_ASCII database PostgreSQL converts nothing: the bytes are read as they are', () => {
    const t = new ClientText(params({ client_encoding: 'BIG5', server_encoding: 'SQL_ASCII' }));
    expect(t.fast).toBe(true);
  });
});

describe('standard_conforming_strings off', () => {
  it('refuses texts with a backslash and reads the others', () => {
    const t = new ClientText(params({ standard_conforming_strings: 'off' }));
    expect(read(t, Buffer.from("SELECT 'a\\' , ' ; DELETE FROM victim; -- '"))).toMatchObject({ code: '0A000', message: expect.stringContaining('standard_conforming_strings') });
    expect(read(t, Buffer.from("SELECT 'plain'"))).toBe("SELECT 'plain'");
    expect(read(t, Buffer.from("SELECT 'café'"))).toBe("SELECT 'café'");
  });
});

describe('changes in flight', () => {
  it('a possible change unsettles: only ASCII texts without backslash are read until the session settles', () => {
    const t = new ClientText(params({}));
    const e0 = t.epoch;
    t.mayChange();
    expect(t.fast).toBe(false);
    expect(t.epoch).not.toBe(e0);
    expect(read(t, Buffer.from('SELECT 1'))).toBe('SELECT 1');
    expect(read(t, Buffer.from("SELECT 'é'"))).toMatchObject({ code: '0A000' });
    expect(read(t, Buffer.from("SELECT E'\\n'"))).toMatchObject({ code: '0A000' });
    t.settle();
    expect(t.fast).toBe(true);
    expect(read(t, Buffer.from("SELECT 'é'"))).toBe("SELECT 'é'");
  });

  it('a reported change unsettles too (it may be rolled back), and settles into the reported values', () => {
    const t = new ClientText(params({}));
    t.update(params({ client_encoding: 'BIG5' }));
    expect(t.isSettled).toBe(false);
    expect(read(t, bytes("SELECT '", [0xa4, 0x5c], "'"))).toMatchObject({ code: '0A000' });
    t.settle();
    expect(t.clientEncoding).toBe('BIG5');
    expect(typeof read(t, bytes("SELECT '", [0xa4, 0x5c], "'"))).toBe('string');
  });

  it('an unchanged report does not unsettle', () => {
    const t = new ClientText(params({}));
    t.update(params({ application_name: 'x' }));
    expect(t.isSettled).toBe(true);
    expect(t.fast).toBe(true);
  });
});
