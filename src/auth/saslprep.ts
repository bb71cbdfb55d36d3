/**
 * SASLprep (RFC 4013) exactly as PostgreSQL applies it to SCRAM passwords
 * (src/common/saslprep.c, used both by the server when it stores a verifier
 * and by libpq when it answers a challenge). Pure.
 *
 * PostgreSQL quirks reproduced on purpose, because the output must be
 * byte-identical to what PostgreSQL feeds into PBKDF2:
 *  - a pure-ASCII password is returned unchanged, without any check
 *    (so e.g. ASCII control characters are accepted);
 *  - the prohibited-output and bidi checks look at the string after the
 *    mapping step but *before* NFKC normalization;
 *  - a string that is empty after mapping is rejected.
 * When SASLprep rejects a password, PostgreSQL silently uses the raw bytes:
 * see {@link scramPasswordBytes}.
 */
import { LCAT, NOTHING, PROHIBITED, RANDAL, SPACE } from './saslprep-tables.js';

/** Flattened inclusive ranges: [lo0, hi0, lo1, hi1, ...], sorted. */
type RangeTable = Uint32Array;

function parseTable(spec: string): RangeTable {
  const parts = spec.split(',');
  const table = new Uint32Array(parts.length * 2);
  parts.forEach((part, i) => {
    const [lo, hi = lo] = part.split('-');
    table[2 * i] = parseInt(lo, 16);
    table[2 * i + 1] = parseInt(hi, 16);
  });
  return table;
}

function inTable(table: RangeTable, cp: number): boolean {
  let lo = 0;
  let hi = table.length / 2 - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    if (cp < table[2 * mid]) hi = mid - 1;
    else if (cp > table[2 * mid + 1]) lo = mid + 1;
    else return true;
  }
  return false;
}

const spaceTable = parseTable(SPACE);
const nothingTable = parseTable(NOTHING);
const prohibitedTable = parseTable(PROHIBITED);
const randAlTable = parseTable(RANDAL);
const lCatTable = parseTable(LCAT);

const PURE_ASCII = /^[\x00-\x7f]*$/;

/**
 * Apply SASLprep as PostgreSQL does. Returns null when the password is not a
 * valid SASLprep string (prohibited character, bidi violation, lone
 * surrogate, or empty after mapping).
 */
export function saslprep(input: string): string | null {
  if (PURE_ASCII.test(input)) return input;

  // 1) Map: non-ASCII spaces -> U+0020, "commonly mapped to nothing" -> removed.
  const mapped: number[] = [];
  for (const ch of input) {
    const cp = ch.codePointAt(0) ?? 0;
    if (inTable(spaceTable, cp)) mapped.push(0x20);
    else if (!inTable(nothingTable, cp)) mapped.push(cp);
  }
  if (mapped.length === 0) return null;

  // 3) Prohibit (A.1 unassigned + C.* tables). Lone surrogates fall in C.5.
  if (mapped.some((cp) => inTable(prohibitedTable, cp))) return null;

  // 4) Bidi: any RandALCat => no LCat, and first and last must be RandALCat.
  if (mapped.some((cp) => inTable(randAlTable, cp))) {
    if (mapped.some((cp) => inTable(lCatTable, cp))) return null;
    if (!inTable(randAlTable, mapped[0]) || !inTable(randAlTable, mapped[mapped.length - 1])) return null;
  }

  // 2) Normalize (done last here; the checks above deliberately mirror PostgreSQL).
  return mapped
    .map((cp) => String.fromCodePoint(cp))
    .join('')
    .normalize('NFKC');
}

/**
 * The exact bytes PostgreSQL uses as the PBKDF2 password for SCRAM: the
 * SASLprep'd string as UTF-8, or the raw UTF-8 bytes of `password` when
 * SASLprep rejects it.
 */
export function scramPasswordBytes(password: string): Buffer {
  return Buffer.from(saslprep(password) ?? password, 'utf8');
}
