/**
 * Deterministic, realistic, type-preserving fakes for text values.
 *
 * One `Faker` (locale en) is seeded per value with the eight 32-bit words of
 * HMAC-SHA256(key, type + "\0" + value) plus an attempt counter, so the same value and key
 * always give the same fake, another key gives another one, and a fake that happens to equal
 * its input (or, for detectable types, no longer looks like the type) is retried with the
 * next counter. Nothing of the input is kept except its shape (length, separators, character
 * classes) and non-identifying structure (card brand prefix, IBAN country).
 */
import type { Faker } from '@faker-js/faker';
import { cardBrand, ibanCheckDigits, luhnCheckDigit } from './checks.js';
import { type DetectorName, findSensitive } from './detectors.js';
import { formatIp, ipFamily } from './netaddr.js';
import { LOWER, UPPER, canonicalType, charClass, classShape, seeded } from './random.js';
import { civilFromDays, daysFromCivil } from './temporal.js';

export { canonicalType, charClass } from './random.js';

/** Replaces the ASCII digits of `template`, in order, with `digits`. */
function layDigits(template: string, digits: string): string {
  let i = 0;
  return template.replace(/\d/g, () => digits[i++]);
}

function randomDigits(f: Faker, n: number): string {
  let s = '';
  for (let i = 0; i < n; i++) s += String(f.number.int(9));
  return s;
}

/** Upper/lower-cases a fake like the original when the original is all one case. */
function likeCase(original: string, fake: string): string {
  if (!/[A-Za-z]/.test(original)) return fake;
  if (original === original.toUpperCase()) return fake.toUpperCase();
  if (original === original.toLowerCase()) return fake.toLowerCase();
  return fake;
}

const pad = (n: number, w: number): string => String(n).padStart(w, '0');

// ------------------------------------------------------------------------------ generators

type Generator = (value: string, f: Faker) => string | undefined;

function fakeName(value: string, f: Faker): string {
  const words = value.trim().split(/\s+/).filter(Boolean).length;
  let out: string;
  if (words <= 1) out = f.person.firstName();
  else if (words > 4) out = f.person.fullName();
  else {
    const middles = Array.from({ length: words - 2 }, () => f.person.middleName());
    out = [f.person.firstName(), ...middles, f.person.lastName()].join(' ');
  }
  return likeCase(value, out);
}

function fakePhone(value: string, f: Faker): string | undefined {
  const digits = value.replace(/\D/g, '');
  if (digits.length === 0) return undefined;
  let d: string;
  if (digits.length === 11 && digits[0] === '1') d = `1${f.number.int({ min: 2, max: 9 })}${randomDigits(f, 9)}`;
  else if (digits.length === 10) d = `${f.number.int({ min: 2, max: 9 })}${randomDigits(f, 9)}`;
  else d = `${f.number.int({ min: 1, max: 9 })}${randomDigits(f, digits.length - 1)}`;
  return layDigits(value, d);
}

function fakeSsn(value: string, f: Faker): string | undefined {
  const m = /^(\s*)(\d{3})([- ]?)(\d{2})\3(\d{4})(\s*)$/.exec(value);
  if (!m) return undefined;
  let area = f.number.int({ min: 1, max: 899 });
  if (area === 666) area = 665;
  const group = f.number.int({ min: 1, max: 99 });
  const serial = f.number.int({ min: 1, max: 9999 });
  return `${m[1]}${pad(area, 3)}${m[3]}${pad(group, 2)}${m[3]}${pad(serial, 4)}${m[6]}`;
}

function fakeCard(value: string, f: Faker): string | undefined {
  if (!/^[\d -]+$/.test(value)) return undefined;
  const digits = value.replace(/\D/g, '');
  if (digits.length < 12 || digits.length > 19) return undefined;
  const prefix = cardBrand(digits)?.prefix ?? digits[0];
  const body = prefix + randomDigits(f, digits.length - prefix.length - 1);
  return layDigits(value, body + luhnCheckDigit(body));
}

function fakeIban(value: string, f: Faker): string | undefined {
  const compact = value.replace(/ /g, '');
  if (!/^[A-Za-z]{2}\d{2}[A-Za-z0-9]{4,}$/.test(compact)) return undefined;
  const country = compact.slice(0, 2).toUpperCase();
  const bban = Array.from(compact.slice(4), (ch) => (charClass(ch) === 'digit' ? String(f.number.int(9)) : UPPER[f.number.int(25)])).join('');
  const fresh = country + ibanCheckDigits(country, bban) + bban;
  const lower = compact === compact.toLowerCase();
  let i = 0;
  const out = value.replace(/[^ ]/g, () => fresh[i++]);
  return lower ? out.toLowerCase() : out;
}

function fakeIp(value: string, f: Faker): string {
  const m = /^([^/]*)(\/\d{1,3})?$/.exec(value.trim());
  const family = m ? ipFamily(m[1]) : undefined;
  const bytes = Uint8Array.from({ length: family === 6 ? 16 : 4 }, () => f.number.int(255));
  return formatIp(bytes) + (m?.[2] ?? '');
}

/** YYYY-MM-DD (or / .) shifted by 1–365 days; birthdates: a new adult birthdate. */
function fakeDate(value: string, f: Faker, birth: boolean): string | undefined {
  const iso = /^(\d{4})([-/.])(\d{2})\2(\d{2})(.*)$/s.exec(value);
  if (iso) {
    const month = Number(iso[3]);
    const day = Number(iso[4]);
    const days = daysFromCivil(Number(iso[1]), month, day);
    const check = civilFromDays(days);
    if (check.m !== month || check.d !== day) return undefined;
    const shifted = birth
      ? Math.floor(f.date.birthdate({ mode: 'age', min: 18, max: 90 }).getTime() / 86_400_000)
      : days + f.helpers.arrayElement([-1, 1]) * f.number.int({ min: 1, max: 365 });
    const d = civilFromDays(shifted);
    if (d.y < 1 || d.y > 9999) return undefined;
    const s = iso[2];
    return `${pad(d.y, 4)}${s}${pad(d.m, 2)}${s}${pad(d.d, 2)}${iso[5]}`;
  }
  // DD/MM/YYYY or MM/DD/YYYY: both fields ≤ 12, so the fake is valid read either way.
  const dmy = /^(\d{1,2})([-/.])(\d{1,2})\2(\d{4})(.*)$/s.exec(value);
  if (dmy) {
    const year = birth ? f.number.int({ min: 1935, max: 2007 }) : Number(dmy[4]) + f.number.int({ min: -1, max: 1 });
    const a = f.number.int({ min: 1, max: 12 });
    const b = f.number.int({ min: 1, max: 12 });
    return `${pad(a, dmy[1].length)}${dmy[2]}${pad(b, dmy[3].length)}${dmy[2]}${pad(year, 4)}${dmy[5]}`;
  }
  return undefined;
}

const GENERATORS: Readonly<Record<string, Generator>> = {
  email: (_v, f) => f.internet.exampleEmail(),
  name: fakeName,
  first_name: (v, f) => likeCase(v, f.person.firstName()),
  last_name: (v, f) => likeCase(v, f.person.lastName()),
  phone: fakePhone,
  ssn: fakeSsn,
  credit_card: fakeCard,
  iban: fakeIban,
  ip: fakeIp,
  ipv4: fakeIp,
  ipv6: fakeIp,
  date: (v, f) => fakeDate(v, f, false),
  birthdate: (v, f) => fakeDate(v, f, true),
  address: (v, f) => likeCase(v, f.location.streetAddress()),
  city: (v, f) => likeCase(v, f.location.city()),
  state: (v, f) => likeCase(v, f.location.state()),
  country: (v, f) => likeCase(v, f.location.country()),
  company: (v, f) => likeCase(v, f.company.name()),
  username: (_v, f) => f.internet.username(),
  url: (_v, f) => f.internet.url(),
  // jwt, api_key, secret, token, password, zip, and every unknown type: classShape.
};

/** Types with a detector: a fake of a value that is detected as the type must be detected too. */
const DETECTABLE: Readonly<Record<string, DetectorName>> = {
  email: 'email', phone: 'phone', ssn: 'ssn', credit_card: 'credit_card', iban: 'iban', ipv4: 'ipv4', ipv6: 'ipv6',
};

function wholeMatch(value: string, detector: DetectorName): boolean {
  const trimmed = value.trim();
  const spans = findSensitive(trimmed, [detector]);
  return spans.length === 1 && spans[0].start === 0 && spans[0].end === trimmed.length;
}

function emailParts(v: string): [string, string] {
  const at = v.lastIndexOf('@');
  return at < 0 ? [v.toLowerCase(), ''] : [v.slice(0, at).toLowerCase(), v.slice(at + 1).toLowerCase()];
}

/** Changes the first letter or digit to the next one of its class ("" and punctuation-only values stay). */
function nudge(value: string): string {
  const chars = Array.from(value);
  for (let i = 0; i < chars.length; i++) {
    const k = charClass(chars[i]);
    if (k === 'other') continue;
    const set = k === 'digit' ? '0123456789' : k === 'upper' ? UPPER : LOWER;
    const at = set.indexOf(chars[i]);
    chars[i] = set[(at + 1) % set.length];
    return chars.join('');
  }
  return value;
}

/** The `fake` masker for a text value of sensitive type `type`. */
export function fakeText(value: string, type: string, key: Buffer): string {
  const canon = canonicalType(type);
  const gen = GENERATORS[canon];
  const detector = DETECTABLE[canon];
  const mustDetect = detector !== undefined && wholeMatch(value, detector);
  const [origLocal, origDomain] = canon === 'email' ? emailParts(value) : ['', ''];
  let fallback: string | undefined;
  const out = seeded(
    key,
    canon,
    value,
    (f) => (gen ? gen(value, f) : undefined) ?? classShape(value, f),
    (fake) => {
      if (fake === value) return false;
      fallback ??= fake;
      if (canon === 'email') {
        const [local, domain] = emailParts(fake);
        if (local === origLocal || domain === origDomain) return false;
      }
      return !mustDetect || wholeMatch(fake, detector);
    },
  );
  return out ?? fallback ?? nudge(value);
}
