/**
 * The forms in which a real value may leak through a masked channel: as is, lower and upper
 * case, without separators, digits only, reversed, hex, base64, md5 and sha256 — and, for a
 * value with at least 7 digits, its digits in order with any separators between them
 * (`translate(ssn, '-', 'x')`, `'[' || ssn || ']'`).
 */
import crypto from 'node:crypto';

function hashes(v: string): string[] {
  return [crypto.createHash('md5').update(v).digest('hex'), crypto.createHash('sha256').update(v).digest('hex')];
}

export function leakForms(values: readonly string[]): string[] {
  const out = new Set<string>();
  for (const v of values) {
    const compact = v.replace(/[\s\-().+]/g, '');
    for (const f of [v, v.toLowerCase(), v.toUpperCase(), compact, compact.toLowerCase(), [...v].reverse().join(''), [...compact].reverse().join('')]) {
      out.add(f);
      out.add(Buffer.from(f).toString('hex'));
      out.add(Buffer.from(f).toString('base64').replace(/=+$/, ''));
      for (const h of hashes(f)) out.add(h);
    }
    const digits = v.replace(/\D/g, '');
    if (digits.length >= 7) out.add(digits);
  }
  return [...out].filter((x) => x.length >= 6);
}

/** The leak forms found in `text` (case-insensitive for hex and hashes), and digit runs with separators. */
export function findLeaks(text: string, values: readonly string[]): string[] {
  const lower = text.toLowerCase();
  const found = leakForms(values).filter((n) => text.includes(n) || (/^[0-9a-f]+$/.test(n) && lower.includes(n)));
  for (const v of values) {
    const digits = v.replace(/\D/g, '');
    if (digits.length < 7) continue;
    // The digits in order, at most two other characters between consecutive ones.
    const re = new RegExp(digits.split('').join('[^0-9]{0,2}'));
    if (re.test(text) && !found.includes(digits)) found.push(`${digits} (with separators)`);
  }
  return found;
}
