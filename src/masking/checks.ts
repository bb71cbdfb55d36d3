/**
 * Validity checks shared by the detectors and the fakes: Luhn, card brand prefixes
 * (IIN ranges), IBAN country lengths and mod-97 check digits, SSA SSN ranges.
 *
 * All functions are pure and work on already-extracted digit / character strings.
 */

/** True when a string of ASCII digits passes the Luhn (mod 10) check. */
export function luhnValid(digits: string): boolean {
  return digits.length > 0 && luhnSum(digits, false) % 10 === 0;
}

/** The check digit that makes `body + digit` Luhn-valid. */
export function luhnCheckDigit(body: string): string {
  return String((10 - (luhnSum(body, true) % 10)) % 10);
}

function luhnSum(digits: string, doubleLast: boolean): number {
  let sum = 0;
  let double = doubleLast;
  for (let i = digits.length - 1; i >= 0; i--) {
    let d = digits.charCodeAt(i) - 48;
    if (double) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    double = !double;
  }
  return sum;
}

interface BrandRange {
  brand: string;
  /** Inclusive numeric range over the first `from.length` digits. */
  from: string;
  to: string;
  lengths: readonly number[];
}

const R = (brand: string, from: string, to: string, lengths: readonly number[]): BrandRange => ({ brand, from, to, lengths });
const L16_19 = [16, 17, 18, 19] as const;

/** Known issuer prefixes; the longest (most specific) match wins. */
const BRANDS: readonly BrandRange[] = [
  R('visa', '4', '4', [13, 16, 19]),
  R('mastercard', '51', '55', [16]),
  R('mastercard', '2221', '2720', [16]),
  R('amex', '34', '34', [15]),
  R('amex', '37', '37', [15]),
  R('discover', '6011', '6011', L16_19),
  R('discover', '644', '649', L16_19),
  R('discover', '65', '65', L16_19),
  R('diners', '300', '305', [14, 15, 16, 17, 18, 19]),
  R('diners', '36', '36', [14, 15, 16, 17, 18, 19]),
  R('diners', '38', '39', [14, 15, 16, 17, 18, 19]),
  R('jcb', '3528', '3589', L16_19),
  R('unionpay', '62', '62', L16_19),
  R('mir', '2200', '2204', L16_19),
  R('maestro', '5018', '5018', [13, 14, 15, 16, 17, 18, 19]),
  R('maestro', '5020', '5020', [13, 14, 15, 16, 17, 18, 19]),
  R('maestro', '5038', '5038', [13, 14, 15, 16, 17, 18, 19]),
  R('maestro', '5893', '5893', [13, 14, 15, 16, 17, 18, 19]),
  R('maestro', '6304', '6304', [13, 14, 15, 16, 17, 18, 19]),
  R('maestro', '6759', '6759', [13, 14, 15, 16, 17, 18, 19]),
  R('maestro', '6761', '6763', [13, 14, 15, 16, 17, 18, 19]),
];

export interface CardBrand {
  brand: string;
  /** The digits of the number that identify the brand (kept by fakes). */
  prefix: string;
}

/** The brand of a card number (digits only) whose prefix and length match, or undefined. */
export function cardBrand(digits: string): CardBrand | undefined {
  let best: CardBrand | undefined;
  for (const r of BRANDS) {
    const n = r.from.length;
    if (digits.length < n || !r.lengths.includes(digits.length)) continue;
    const head = digits.slice(0, n);
    if (head >= r.from && head <= r.to && (!best || n > best.prefix.length)) best = { brand: r.brand, prefix: head };
  }
  return best;
}

/** A plausible card number: 13–19 digits, a known brand for its length, Luhn-valid. */
export function isCardNumber(digits: string): boolean {
  return digits.length >= 13 && digits.length <= 19 && cardBrand(digits) !== undefined && luhnValid(digits);
}

/** IBAN lengths of the countries we recognise (ISO 13616 registry). */
export const IBAN_LENGTHS: Readonly<Record<string, number>> = {
  AD: 24, AE: 23, AL: 28, AT: 20, AZ: 28, BA: 20, BE: 16, BG: 22, BH: 22, BR: 29, CH: 21, CR: 22,
  CY: 28, CZ: 24, DE: 22, DK: 18, DO: 28, EE: 20, EG: 29, ES: 24, FI: 18, FO: 18, FR: 27, GB: 22,
  GE: 22, GI: 23, GL: 18, GR: 27, GT: 28, HR: 21, HU: 28, IE: 22, IL: 23, IQ: 23, IS: 26, IT: 27,
  JO: 30, KW: 30, KZ: 20, LB: 28, LI: 21, LT: 20, LU: 20, LV: 21, MC: 27, MD: 24, ME: 22, MK: 19,
  MR: 27, MT: 31, MU: 30, NL: 18, NO: 15, PK: 24, PL: 28, PS: 29, PT: 25, QA: 29, RO: 24, RS: 22,
  SA: 24, SE: 24, SI: 19, SK: 24, SM: 27, TN: 24, TR: 26, UA: 29, VG: 24, XK: 20,
};

/** ISO 7064 mod 97-10 remainder of an IBAN given in its rearranged form (BBAN + CC + check digits). */
function mod97(rearranged: string): number {
  let rem = 0;
  for (let i = 0; i < rearranged.length; i++) {
    const c = rearranged.charCodeAt(i);
    if (c >= 48 && c <= 57) rem = (rem * 10 + (c - 48)) % 97;
    else if (c >= 65 && c <= 90) rem = (rem * 100 + (c - 55)) % 97;
    else return -1;
  }
  return rem;
}

/** True for a compact (no spaces) upper-case IBAN of a known country, right length, valid checksum. */
export function isIban(compact: string): boolean {
  const len = IBAN_LENGTHS[compact.slice(0, 2)];
  if (len === undefined || compact.length !== len || !/^[A-Z]{2}\d{2}[A-Z0-9]+$/.test(compact)) return false;
  return mod97(compact.slice(4) + compact.slice(0, 4)) === 1;
}

/** The two check digits for a country code and BBAN. */
export function ibanCheckDigits(country: string, bban: string): string {
  const rem = mod97(bban + country + '00');
  return String(98 - rem).padStart(2, '0');
}

/** SSA rules: area not 000, 666 or 900–999; group not 00; serial not 0000. */
export function ssnPartsValid(area: string, group: string, serial: string): boolean {
  const a = Number(area);
  return a !== 0 && a !== 666 && a < 900 && group !== '00' && serial !== '0000';
}
