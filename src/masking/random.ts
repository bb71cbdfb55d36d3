/**
 * The seeded randomness behind every fake: one `Faker` (locale en) seeded per value with the
 * eight 32-bit words of HMAC-SHA256(key, type + "\0" + value) plus an attempt counter, so the
 * same value and key always give the same fake and another key another one. Also the
 * canonical sensitive-type names and the character-class shape fake.
 */
import { createHmac } from 'node:crypto';
import { Faker, type Randomizer, base, en } from '@faker-js/faker';

/**
 * sfc32 behind faker's API. The default Mersenne Twister costs tens of microseconds to seed,
 * more than the rest of a fake, and we seed once per masked value. All seed words (the HMAC
 * output and the attempt counter) are mixed into the 128-bit state.
 */
function sfc32Randomizer(): Randomizer {
  let a = 0;
  let b = 0;
  let c = 0;
  let d = 0;
  const next32 = (): number => {
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return t >>> 0;
  };
  return {
    next: () => ((next32() >>> 5) * 67108864 + (next32() >>> 6)) / 9007199254740992,
    seed(seed: number | number[]): void {
      a = 0x9e3779b9;
      b = 0x243f6a88;
      c = 0xb7e15162;
      d = 1;
      for (const w of Array.isArray(seed) ? seed : [seed]) {
        a ^= w | 0;
        b ^= Math.floor(w / 4294967296) | 0;
        for (let i = 0; i < 4; i++) next32();
      }
      for (let i = 0; i < 12; i++) next32();
    },
  };
}

const faker = new Faker({ locale: [en, base], randomizer: sfc32Randomizer() });
// Relative dates (birthdates) must not depend on the day we run.
faker.setDefaultRefDate(new Date('2025-01-01T00:00:00Z'));

const MAX_ATTEMPTS = 16;

/** Type names as written in configs → the canonical name the fakes and seeds use. */
const ALIASES: Readonly<Record<string, string>> = {
  e_mail: 'email', mail: 'email', email_address: 'email',
  full_name: 'name', fullname: 'name', person: 'name', person_name: 'name',
  firstname: 'first_name', given_name: 'first_name',
  lastname: 'last_name', surname: 'last_name', family_name: 'last_name',
  phone_number: 'phone', telephone: 'phone', tel: 'phone', mobile: 'phone',
  social_security_number: 'ssn',
  card: 'credit_card', card_number: 'credit_card', creditcard: 'credit_card', cc: 'credit_card', pan: 'credit_card',
  ip: 'ip', ip_address: 'ip', inet: 'ip',
  birth_date: 'birthdate', dob: 'birthdate', date_of_birth: 'birthdate', birthday: 'birthdate',
  street: 'address', street_address: 'address',
  company_name: 'company', organization: 'company',
  user_name: 'username', login: 'username',
  website: 'url', uri: 'url',
};

export function canonicalType(type: string): string {
  const t = type.trim().toLowerCase().replace(/[\s-]+/g, '_');
  return ALIASES[t] ?? t;
}

/** The seed words for a (canonical type, value) pair. */
export function seedWords(key: Buffer, type: string, value: string): number[] {
  const d = createHmac('sha256', key).update(`${type}\0${value}`).digest();
  const words: number[] = [];
  for (let i = 0; i < 32; i += 4) words.push(d.readUInt32BE(i));
  return words;
}

/**
 * Runs `generate` with the faker seeded for (type, value, attempt) until `accept` holds.
 * Returns the first accepted result, or undefined after MAX_ATTEMPTS.
 */
export function seeded<T>(key: Buffer, type: string, value: string, generate: (f: Faker) => T, accept: (out: T) => boolean): T | undefined {
  const words = seedWords(key, type, value);
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    faker.seed([...words, attempt]);
    const out = generate(faker);
    if (accept(out)) return out;
  }
  return undefined;
}

// ------------------------------------------------------------------------------ shape helpers

/** A fast generator for long values, itself seeded from the faker (mulberry32). */
function streamFrom(f: Faker): () => number {
  let s = f.number.int({ min: 0, max: 0xffffffff });
  return () => {
    s = (s + 0x6d2b79f5) | 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const UPPER = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ';
export const LOWER = 'abcdefghijklmnopqrstuvwxyz';

type CharClass = 'digit' | 'upper' | 'lower' | 'other';

export function charClass(ch: string): CharClass {
  const c = ch.charCodeAt(0);
  if (c >= 48 && c <= 57) return 'digit';
  if (c >= 65 && c <= 90) return 'upper';
  if (c >= 97 && c <= 122) return 'lower';
  if (c < 128) return 'other';
  if (/\p{N}/u.test(ch)) return 'digit';
  if (/\p{Lu}/u.test(ch)) return 'upper';
  if (/\p{L}/u.test(ch)) return 'lower';
  return 'other';
}

/** Same length in characters; digits, upper- and lower-case letters replaced within their class. */
export function classShape(value: string, f: Faker): string {
  const rnd = streamFrom(f);
  let out = '';
  for (const ch of value) {
    const k = charClass(ch);
    if (k === 'digit') out += String(Math.floor(rnd() * 10));
    else if (k === 'upper') out += UPPER[Math.floor(rnd() * 26)];
    else if (k === 'lower') out += LOWER[Math.floor(rnd() * 26)];
    else out += ch;
  }
  return out;
}

