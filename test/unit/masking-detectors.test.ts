/**
 * findSensitive (src/masking/detectors.ts): the true/false-positive corpora, overlap and
 * ordering rules, the per-detector validity rules, and linear-time behaviour on adversarial input.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { isCardNumber, isIban, luhnCheckDigit, luhnValid } from '../../src/masking/checks.js';
import { DETECTORS, type DetectorName, findSensitive } from '../../src/masking/detectors.js';

const corpus = (name: string): unknown => parse(readFileSync(fileURLToPath(new URL(`../corpus/${name}`, import.meta.url)), 'utf8'));

const falsePositives = (corpus('masking-false-positives.yaml') as { values: string[] }).values;
const truePositives = (corpus('masking-true-positives.yaml') as { cases: { type: DetectorName; text: string; match?: string }[] }).cases;

const found = (text: string, enabled: readonly string[] = DETECTORS): [string, string][] =>
  findSensitive(text, enabled).map((s) => [s.type, text.slice(s.start, s.end)]);

describe('false-positive corpus', () => {
  it('has at least 60 string values', () => {
    expect(falsePositives.length).toBeGreaterThanOrEqual(60);
    for (const v of falsePositives) expect(typeof v).toBe('string');
  });
  it.each(falsePositives)('nothing in %j', (value) => {
    expect(found(value)).toEqual([]);
  });
});

describe('true-positive corpus', () => {
  it('covers every detector', () => {
    expect(new Set(truePositives.map((c) => c.type))).toEqual(new Set(DETECTORS));
  });
  it.each(truePositives.map((c) => [c.type, c.text, c.match ?? c.text] as const))('%s in %j', (type, text, match) => {
    expect(found(text)).toContainEqual([type, match]);
    // Only that detector enabled: found too, and nothing else is reported.
    expect(found(text, [type])).toEqual([[type, match]]);
  });
});

describe('enabled detectors', () => {
  const text = 'ann@example.com 123-45-6789 4242 4242 4242 4242';
  it('runs only the enabled ones and ignores unknown names', () => {
    expect(found(text, ['ssn', 'name', 'nonsense'])).toEqual([['ssn', '123-45-6789']]);
    expect(found(text, [])).toEqual([]);
  });
  it('reports spans in text order', () => {
    expect(found(text).map(([t]) => t)).toEqual(['email', 'ssn', 'credit_card']);
    const spans = findSensitive(text, DETECTORS);
    for (let i = 1; i < spans.length; i++) expect(spans[i].start).toBeGreaterThanOrEqual(spans[i - 1].end);
  });
});

describe('overlaps', () => {
  it('prefers the higher-priority type: the secret over the email inside it', () => {
    expect(found('password=ann@example.com')).toEqual([['api_key', 'ann@example.com']]);
  });
  it('prefers IPv6 over the IPv4 embedded in it', () => {
    expect(found('::ffff:10.1.2.3')).toEqual([['ipv6', '::ffff:10.1.2.3']]);
  });
  it('keeps the longer phone span (+1 prefix) over the shorter US form', () => {
    expect(found('+1 (555) 123-4567')).toEqual([['phone', '+1 (555) 123-4567']]);
  });
  it('never returns overlapping spans on dense input', () => {
    const text = 'x 4242424242424242 +1 555 123 4567 192.168.0.1 ann@ex.com GB82WEST12345698765432 '.repeat(20);
    const spans = findSensitive(text, DETECTORS);
    expect(spans.length).toBe(100);
    for (let i = 1; i < spans.length; i++) expect(spans[i].start).toBeGreaterThanOrEqual(spans[i - 1].end);
  });
});

describe('credit cards', () => {
  it('require Luhn', () => {
    expect(luhnValid('4242424242424242')).toBe(true);
    expect(luhnValid('4242424242424243')).toBe(false);
    expect(found('4242424242424243')).toEqual([]);
  });
  it('require a brand prefix valid for the length', () => {
    // Luhn-valid but no known issuer (prefix 1, 9) or wrong length for the brand (Amex is 15).
    const body = '123456789012345';
    expect(found(body + luhnCheckDigit(body))).toEqual([]);
    const amex16 = '371449635398431';
    expect(isCardNumber(amex16)).toBe(true);
    const longAmex = amex16.slice(0, 14) + '0';
    expect(isCardNumber(longAmex + luhnCheckDigit(longAmex))).toBe(false);
  });
  it('reject mixed separators and odd groupings', () => {
    expect(found('4242 4242-4242 4242')).toEqual([]);
    expect(found('42 42 42 42 42 42 42 42')).toEqual([]);
  });
  it('are not taken out of longer digit runs or decimals', () => {
    expect(found('14242424242424242')).toEqual([]);
    expect(found('0.4242424242424242')).toEqual([]);
    expect(found('id-4242424242424242')).toEqual([]);
  });
});

describe('SSN', () => {
  it.each(['000-12-3456', '666-12-3456', '900-12-3456', '999-12-3456', '123-00-4567', '123-45-0000'])('rejects SSA-invalid %s', (v) => {
    expect(found(v, ['ssn'])).toEqual([]);
  });
  it('accepts the edges of the valid ranges', () => {
    expect(found('001-01-0001 899-99-9999 665-10-1000', ['ssn']).map(([, v]) => v)).toEqual(['001-01-0001', '899-99-9999', '665-10-1000']);
  });
});

describe('IBAN', () => {
  it('requires the mod-97 checksum and the country length', () => {
    expect(isIban('GB82WEST12345698765432')).toBe(true);
    expect(isIban('GB82WEST12345698765433')).toBe(false);
    expect(isIban('GB82WEST1234569876543')).toBe(false);
    expect(found('GB82WEST1234569876543')).toEqual([]);
  });
});

describe('IP addresses', () => {
  it('IPv4 octets are at most 255 and exactly four', () => {
    expect(found('255.255.255.255')).toEqual([['ipv4', '255.255.255.255']]);
    expect(found('255.255.255.256')).toEqual([]);
    expect(found('1.2.3.4.5')).toEqual([]);
  });
  it('IPv6 candidates must be complete addresses', () => {
    expect(found('2001:db8::1')).toEqual([['ipv6', '2001:db8::1']]);
    expect(found('2001:db8:1')).toEqual([]);
    expect(found('2001:db8::1g')).toEqual([]);
  });
});

describe('JWT', () => {
  const b64 = (o: unknown): string => Buffer.from(JSON.stringify(o)).toString('base64url');
  it('needs a JSON header with "alg"', () => {
    const good = `${b64({ alg: 'RS256', kid: 'k' })}.${b64({ sub: 'u' })}.sig_nature-1`;
    expect(found(`Bearer ${good}`)).toEqual([['jwt', good]]);
    expect(found(`${b64({ typ: 'JWT' })}.${b64({ sub: 'u' })}.signature`)).toEqual([]);
    expect(found(`${b64({ alg: 'none' })}.${b64({ sub: 'u' })}.sig.extra`)).toEqual([]);
  });
});

describe('api keys', () => {
  it('reports an unterminated private key block through the end of the text', () => {
    const text = 'k=-----BEGIN EC PRIVATE KEY-----\nMHcCAQEE';
    expect(found(text)).toEqual([['api_key', text.slice(2)]]);
  });
  it('requires the documented lengths', () => {
    expect(found('AKIAIOSFODNN7EXAMPL')).toEqual([]);
    expect(found(`ghp_${'a'.repeat(35)}`)).toEqual([]);
    expect(found(`AIza${'b'.repeat(34)}`)).toEqual([]);
  });
});

describe('adversarial input (1 MB, must stay linear)', () => {
  const MB = 1_000_000;
  const fill = (unit: string): string => unit.repeat(Math.ceil(MB / unit.length)).slice(0, MB);
  const inputs: [string, string][] = [
    ['letters', fill('a')],
    ['digits', fill('1')],
    ['digit-dash', fill('1-')],
    ['digit-space', fill('4 ')],
    ['at-signs', fill('a@')],
    ['dotted', fill('a.')],
    ['email-ish', fill('a.b-c@d')],
    ['plus-digits', fill('+1 ')],
    ['colons', fill(':')],
    ['hex-colons', fill('a:')],
    ['jwt-ish', fill('eyJhbGciOiJub25lIn0.')],
    ['akia', fill('AKIA')],
    ['begin', fill('-----BEGIN PRIVATE KEY-----')],
    ['assignments', fill('password=password=')],
    ['iban-ish', fill('GB82 WEST ')],
    ['mixed', fill('+1(2)3-4.5 6')],
  ];
  it.each(inputs)('%s', (_name, text) => {
    const spans = findSensitive(text, DETECTORS);
    expect(Array.isArray(spans)).toBe(true);
    for (const s of spans) expect(s.end).toBeLessThanOrEqual(text.length);
  });
  it('finds every value in a 1 MB run of them', () => {
    const text = fill('192.168.0.1 ');
    expect(findSensitive(text, DETECTORS).length).toBe(Math.floor(MB / 12));
  });
});
