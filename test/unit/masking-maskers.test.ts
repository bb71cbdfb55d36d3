/**
 * maskText / maskSpans (src/masking/maskers.ts, fakes.ts): determinism, key sensitivity,
 * "a fake never equals its input", type preservation per sensitive type (property-style loops
 * over generated values), and the partial / hash / redact / null maskers.
 */
import { Faker, base, en } from '@faker-js/faker';
import { describe, expect, it } from 'vitest';
import type { MaskerName } from '../../src/config/types.js';
import { cardBrand, ibanCheckDigits, isCardNumber, isIban, luhnCheckDigit, ssnPartsValid } from '../../src/masking/checks.js';
import { DETECTORS, findSensitive } from '../../src/masking/detectors.js';
import { deriveMaskKey, maskSpans, maskText } from '../../src/masking/maskers.js';

const KEY = Buffer.from('test-key-0123456789abcdef0123456');
const OTHER_KEY = Buffer.from('another-key-0123456789abcdef0123');
const N = 300;

const gen = new Faker({ locale: [en, base] });
gen.seed(20250101);

const fake = (value: string, type: string, key: Buffer = KEY): string => {
  const out = maskText(value, type, 'fake', key);
  if (out === null) throw new Error('fake returned null');
  return out;
};

const EMAIL_RE = /^[A-Za-z0-9._%+-]+@(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,}$/;
const wholeDetected = (value: string, type: string): boolean => {
  const spans = findSensitive(value, [type]);
  return spans.length === 1 && spans[0].start === 0 && spans[0].end === value.length;
};
const digitsOf = (s: string): string => s.replace(/\D/g, '');
/** Digits → 9, upper-case letters → A, other letters → a, everything else kept (Unicode-aware). */
const classes = (s: string): string =>
  Array.from(s, (ch) => (/\p{N}/u.test(ch) ? '9' : /\p{Lu}/u.test(ch) ? 'A' : /\p{L}/u.test(ch) ? 'a' : ch)).join('');
const shape = (s: string): string => s.replace(/[0-9]/g, '9').replace(/[A-Z]/g, 'A').replace(/[a-z]/g, 'a');

// ------------------------------------------------------------------------------ generated originals

function genCard(): string {
  const prefix = gen.helpers.arrayElement(['4', '51', '55', '2221', '34', '37', '6011', '65', '3528', '62']);
  const len = prefix === '34' || prefix === '37' ? 15 : 16;
  const body = prefix + gen.string.numeric(len - prefix.length - 1);
  const digits = body + luhnCheckDigit(body);
  const style = gen.number.int(2);
  if (style === 0) return digits;
  const sep = style === 1 ? ' ' : '-';
  return len === 15 ? [digits.slice(0, 4), digits.slice(4, 10), digits.slice(10)].join(sep) : digits.match(/.{4}/g)!.join(sep);
}

function genIban(): string {
  const country = gen.helpers.arrayElement(['GB', 'DE', 'FR', 'NL', 'BE', 'NO', 'ES', 'IT']);
  const lengths: Record<string, number> = { GB: 22, DE: 22, FR: 27, NL: 18, BE: 16, NO: 15, ES: 24, IT: 27 };
  const letters = country === 'GB' || country === 'NL' ? 4 : 0;
  const bban = gen.string.alpha({ length: letters, casing: 'upper' }) + gen.string.numeric(lengths[country] - 4 - letters);
  const compact = country + ibanCheckDigits(country, bban) + bban;
  return gen.datatype.boolean() ? compact : compact.match(/.{1,4}/g)!.join(' ');
}

function genSsn(): string {
  for (;;) {
    const [a, g, s] = [gen.string.numeric(3), gen.string.numeric(2), gen.string.numeric(4)];
    if (ssnPartsValid(a, g, s)) return `${a}-${g}-${s}`;
  }
}

function genPhone(): string {
  const area = `${gen.number.int({ min: 2, max: 9 })}${gen.string.numeric(2)}`;
  const [x, y] = [gen.string.numeric(3), gen.string.numeric(4)];
  return gen.helpers.arrayElement([`(${area}) ${x}-${y}`, `${area}-${x}-${y}`, `+1 ${area} ${x} ${y}`, `+44 20 ${gen.string.numeric(4)} ${y}`]);
}

const originals = (make: () => string): string[] => Array.from({ length: N }, make);

// ------------------------------------------------------------------------------ fake

describe('fake: determinism and keys', () => {
  const samples: [string, string][] = [
    ['email', 'ann@example.com'],
    ['name', 'Ann Smith'],
    ['phone', '(555) 123-4567'],
    ['ssn', '123-45-6789'],
    ['credit_card', '4242 4242 4242 4242'],
    ['iban', 'GB82 WEST 1234 5698 7654 32'],
    ['ipv4', '192.168.1.1'],
    ['date', '2024-01-15'],
    ['api_key', 'AKIAIOSFODNN7EXAMPLE'],
    ['loyalty_code', 'AB-1234-xy'],
  ];
  it.each(samples)('%s: same input and key → same fake; another key → another fake', (type, value) => {
    const a = fake(value, type);
    expect(fake(value, type)).toBe(a);
    expect(a).not.toBe(value);
    expect(fake(value, type, OTHER_KEY)).not.toBe(a);
  });
  it('type names are case- and alias-insensitive, but the type is part of the seed', () => {
    expect(fake('ann@example.com', 'EMAIL')).toBe(fake('ann@example.com', 'email'));
    expect(fake('Ann Smith', 'full_name')).toBe(fake('Ann Smith', 'name'));
    expect(fake('AB-1234-xy', 'code_a')).not.toBe(fake('AB-1234-xy', 'code_b'));
  });
  it('deriveMaskKey is stable and secret-dependent', () => {
    expect(deriveMaskKey('s1').equals(deriveMaskKey('s1'))).toBe(true);
    expect(deriveMaskKey('s1').equals(deriveMaskKey('s2'))).toBe(false);
    expect(deriveMaskKey('s1').length).toBe(32);
  });
});

describe('fake: type preservation (property loops)', () => {
  it('email → a valid email sharing neither local part nor domain', () => {
    for (const v of originals(() => gen.internet.email())) {
      const f = fake(v, 'email');
      expect(f).toMatch(EMAIL_RE);
      expect(wholeDetected(f, 'email')).toBe(true);
      const [local, domain] = v.toLowerCase().split('@');
      const [fl, fd] = f.toLowerCase().split('@');
      expect(fl).not.toBe(local);
      expect(fd).not.toBe(domain);
    }
  });

  it('name → a different name with the same number of words (1–4)', () => {
    const names = originals(() => gen.helpers.arrayElement([gen.person.firstName(), `${gen.person.firstName()} ${gen.person.lastName()}`]));
    for (const v of [...names, 'Ann Marie Smith', 'Jean Paul Louis Martin', 'ANN SMITH']) {
      const f = fake(v, 'name');
      expect(f).not.toBe(v);
      expect(f).toMatch(/^[\p{L}' .-]+$/u);
      const words = (s: string): number => s.trim().split(/\s+/).length;
      // Faker last names can hold a space ("Von Rueden"): allow one extra word.
      expect(words(f)).toBeGreaterThanOrEqual(words(v));
      expect(words(f)).toBeLessThanOrEqual(words(v) + 1);
    }
    expect(fake('ANN SMITH', 'name')).toBe(fake('ANN SMITH', 'name').toUpperCase());
  });

  it('phone → same shape, digits replaced, still a phone number', () => {
    for (const v of originals(genPhone)) {
      const f = fake(v, 'phone');
      expect(f).not.toBe(v);
      expect(shape(f)).toBe(shape(v));
      expect(wholeDetected(f, 'phone')).toBe(true);
    }
  });

  it('ssn → AAA-GG-SSSS outside the SSA invalid ranges', () => {
    for (const v of originals(genSsn)) {
      const f = fake(v, 'ssn');
      expect(f).not.toBe(v);
      const m = /^(\d{3})-(\d{2})-(\d{4})$/.exec(f);
      expect(m).not.toBeNull();
      expect(ssnPartsValid(m![1], m![2], m![3])).toBe(true);
    }
  });

  it('credit_card → same brand prefix, length and grouping, Luhn-valid', () => {
    for (const v of originals(genCard)) {
      const f = fake(v, 'credit_card');
      expect(f).not.toBe(v);
      expect(shape(f)).toBe(shape(v));
      const [d, fd] = [digitsOf(v), digitsOf(f)];
      expect(fd.length).toBe(d.length);
      expect(isCardNumber(fd)).toBe(true);
      expect(cardBrand(fd)).toEqual(cardBrand(d));
      expect(wholeDetected(f, 'credit_card')).toBe(true);
    }
  });

  it('iban → same country and length, valid checksum, same layout', () => {
    for (const v of originals(genIban)) {
      const f = fake(v, 'iban');
      expect(f).not.toBe(v);
      expect(f.slice(0, 2)).toBe(v.slice(0, 2));
      expect(shape(f.slice(4))).toBe(shape(v.slice(4)));
      expect(isIban(f.replace(/ /g, ''))).toBe(true);
    }
  });

  it('ipv4 / ipv6 → an address of the same family', () => {
    for (const v of originals(() => gen.internet.ipv4())) {
      const f = fake(v, 'ipv4');
      expect(f).not.toBe(v);
      expect(wholeDetected(f, 'ipv4')).toBe(true);
    }
    for (const v of originals(() => gen.internet.ipv6())) {
      const f = fake(v, 'ipv6');
      expect(f).not.toBe(v);
      expect(wholeDetected(f, 'ipv6')).toBe(true);
    }
    expect(wholeDetected(fake('::1', 'ip'), 'ipv6')).toBe(true);
    expect(fake('10.0.0.0/8', 'ip')).toMatch(/^\d+\.\d+\.\d+\.\d+\/8$/);
  });

  it('date / birthdate → another valid YYYY-MM-DD', () => {
    for (const type of ['date', 'birthdate', 'dob']) {
      for (const v of originals(() => gen.date.past({ years: 60, refDate: '2025-01-01' }).toISOString().slice(0, 10))) {
        const f = fake(v, type);
        expect(f).not.toBe(v);
        expect(f).toMatch(/^\d{4}-\d{2}-\d{2}$/);
        expect(new Date(`${f}T00:00:00Z`).toISOString().slice(0, 10)).toBe(f);
      }
    }
    expect(fake('2024/02/29', 'date')).toMatch(/^\d{4}\/\d{2}\/\d{2}$/);
    const dmy = fake('31.12.1980', 'birthdate');
    expect(dmy).toMatch(/^(0[1-9]|1[0-2])\.(0[1-9]|1[0-2])\.\d{4}$/);
  });

  it('address / city / country → faker values', () => {
    expect(fake('1 Main St', 'address')).toMatch(/\d+ \S+/);
    expect(fake('Paris', 'city')).not.toBe('Paris');
    expect(fake('France', 'country')).not.toBe('France');
  });

  it('secrets (jwt, api_key, secret) → same length and character classes', () => {
    const secrets = [
      ['jwt', 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c'],
      ['api_key', 'ghp_1234567890abcdefghijABCDEFGHIJ123456'],
      ['secret', 'hunter2!'],
    ];
    for (const [type, v] of secrets) {
      const f = fake(v, type);
      expect(f).not.toBe(v);
      expect(shape(f)).toBe(shape(v));
    }
  });

  it('unknown types → same length, same class per character, punctuation kept', () => {
    const values = originals(() => gen.string.alphanumeric({ length: { min: 1, max: 30 } }) + gen.helpers.arrayElement(['', '-', ' / ', '#']) + gen.string.numeric(3));
    for (const v of [...values, 'Zürich-42', 'X', '7']) {
      const f = fake(v, 'loyalty_code');
      expect(f).not.toBe(v);
      expect(Array.from(f).length).toBe(Array.from(v).length);
      expect(classes(f)).toBe(classes(v));
    }
  });

  it('a fake never equals its input, even for one-character values', () => {
    for (const type of ['ssn', 'phone', 'credit_card', 'code', 'email', 'name']) {
      for (const v of ['0', '1', 'a', 'Z', ...originals(() => gen.string.numeric({ length: { min: 1, max: 3 } })).slice(0, 50)]) {
        expect(fake(v, type)).not.toBe(v);
      }
    }
  });

  it('values with nothing to hide (no letters or digits) stay as they are', () => {
    expect(fake('', 'code')).toBe('');
    expect(fake('--', 'code')).toBe('--');
  });
});

// ------------------------------------------------------------------------------ other maskers

describe('partial', () => {
  it.each([
    ['123-45-6789', '***-**-6789'],
    ['4242 4242 4242 4242', '**** **** **** 4242'],
    ['ann@example.com', '***@******e.com'],
    ['1234', '****'],
    ['a-b', '*-*'],
    ['', ''],
  ])('%s → %s', (v, expected) => {
    expect(maskText(v, 'x', 'partial', KEY)).toBe(expected);
  });
  it('keeps the last four alphanumerics of generated values', () => {
    for (const v of originals(genCard)) {
      const p = maskText(v, 'credit_card', 'partial', KEY)!;
      expect(p.length).toBe(v.length);
      expect(digitsOf(p)).toBe(digitsOf(v).slice(-4));
      expect(p.replace(/[*0-9]/g, '')).toBe(v.replace(/\d/g, ''));
    }
  });
});

describe('hash', () => {
  it('is 32 lower-case hex characters, keyed, deterministic, type-independent', () => {
    const h = maskText('ann@example.com', 'email', 'hash', KEY);
    expect(h).toMatch(/^[0-9a-f]{32}$/);
    expect(maskText('ann@example.com', 'email', 'hash', KEY)).toBe(h);
    expect(maskText('ann@example.com', 'contact', 'hash', KEY)).toBe(h);
    expect(maskText('ann@example.com', 'email', 'hash', OTHER_KEY)).not.toBe(h);
    expect(maskText('bob@example.com', 'email', 'hash', KEY)).not.toBe(h);
  });
});

describe('redact and null', () => {
  it('redact: one * per character', () => {
    expect(maskText('123-45-6789', 'ssn', 'redact', KEY)).toBe('***********');
    expect(maskText('Zürich 😀', 'city', 'redact', KEY)).toBe('********');
    expect(maskText('', 'x', 'redact', KEY)).toBe('');
  });
  it('null: SQL NULL', () => {
    expect(maskText('anything', 'email', 'null', KEY)).toBeNull();
  });
});

describe('maskSpans', () => {
  const text = 'Contact ann@example.com, SSN 123-45-6789, card 4242 4242 4242 4242.';
  const spans = findSensitive(text, DETECTORS);

  it('replaces only the spans, with the masker chosen per type', () => {
    const maskers: Record<string, MaskerName> = { email: 'fake', ssn: 'partial', credit_card: 'redact' };
    const out = maskSpans(text, spans, KEY, (t) => maskers[t]);
    expect(out).toMatch(/^Contact \S+@\S+, SSN \*\*\*-\*\*-6789, card \*{19}\.$/);
    expect(out).not.toContain('ann@example.com');
    const email = out.slice(8, out.indexOf(','));
    expect(email).toBe(fake('ann@example.com', 'email'));
  });

  it('turns a null masker into redact inside text', () => {
    const out = maskSpans(text, spans, KEY, () => 'null');
    expect(out).toBe('Contact ***************, SSN ***********, card *******************.');
  });

  it('returns the text unchanged without spans, and ignores spans overlapping earlier ones', () => {
    expect(maskSpans(text, [], KEY, () => 'redact')).toBe(text);
    const out = maskSpans('abcdefgh', [
      { type: 'x', start: 0, end: 4 },
      { type: 'x', start: 2, end: 6 },
    ], KEY, () => 'partial');
    expect(out).toBe('****' + '**' + 'gh');
  });

  it('accepts spans in any order', () => {
    const reversed = [...spans].reverse();
    expect(maskSpans(text, reversed, KEY, () => 'redact')).toBe(maskSpans(text, spans, KEY, () => 'redact'));
  });
});
