/**
 * Free text computed from scanned columns (`replace(memo, ' ', '')`, `upper(memo)`,
 * `reverse(memo)`, `memo || ''`): the detectors look for values in their usual shapes, and a
 * computed value can bend a detected value out of shape. A computed text cell (or a COPY
 * field of a query) is therefore also scanned in normalised forms — case folded, letters and
 * digits pulled apart, reversed, and digit runs written back in the shapes of an SSN (9
 * digits), a North-American phone (10 or 11 digits), and in a longer run (up to 24 digits)
 * every window shaped like a phone with its country code — and when any form holds a value the
 * plain scan did not find, the whole cell is masked as that value's type.
 *
 * Used only on computed columns of statements that read tables (not on base columns, which
 * the detectors scan as they are, nor on constants): the false-positive corpus stays as it is.
 *
 * Pure.
 */
import { findSensitive } from './detectors.js';

const reverse = (s: string): string => [...s].reverse().join('');

/** Variants of a folded text whose digit runs are written in detectable shapes. */
function digitShapes(folded: string): string[] {
  const out: string[] = [];
  for (const r of new Set(folded.match(/[0-9]{9,}/g) ?? [])) {
    if (r.length === 9) out.push(`${r.slice(0, 3)}-${r.slice(3, 5)}-${r.slice(5)}`);
    else if (r.length === 10) out.push(`+1 ${r.slice(0, 3)} ${r.slice(3, 6)} ${r.slice(6)}`);
    else if (r.length === 11 && r.startsWith('1')) out.push(`+1 ${r.slice(1, 4)} ${r.slice(4, 7)} ${r.slice(7)}`);
    else if (r.length >= 12) {
      out.push(r);
      // Digits run together (`regexp_replace(memo, '[^0-9]', '', 'g')`): every window shaped
      // like a North-American number with its country code (up to 24 digits).
      if (r.length <= 24) {
        for (let i = 0; i + 11 <= r.length; i++) {
          if (r[i] === '1') out.push(`+1 ${r.slice(i + 1, i + 4)} ${r.slice(i + 4, i + 7)} ${r.slice(i + 7, i + 11)}`);
        }
      }
    }
  }
  return out;
}

/**
 * The type of a detectable value hidden in `text` in a normalised form, or undefined. The
 * caller has already scanned `text` as it is (and found nothing).
 */
export function hiddenValueType(text: string, detect: readonly string[]): string | undefined {
  if (detect.length === 0 || text.length < 6) return undefined;
  const folded = text.toLowerCase();
  // Letters and digits pulled apart: `call+14155550142after5` → `call +14155550142 after 5`.
  const apart = folded.replace(/([a-z])(?=[0-9+])/g, '$1 ').replace(/([0-9])(?=[a-z])/g, '$1 ');
  const squeezed = apart.replace(/[\s\-()_/|,;:'"`]+/g, ' ');
  const forms = [folded, apart, squeezed, reverse(folded), reverse(apart)];
  for (const base of [folded, reverse(folded)]) forms.push(...digitShapes(base));
  for (const f of forms) {
    const found = findSensitive(f, detect);
    if (found.length > 0) return found[0]!.type;
  }
  return undefined;
}
