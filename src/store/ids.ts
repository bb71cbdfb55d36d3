/**
 * Opaque ids for state-store records: a short type prefix, `_`, and 20
 * random characters of lowercase Crockford base32 (100 bits from
 * `crypto.randomBytes`), e.g. `apr_7m3kq0x9c2hv5t8wz1bd` for an approval
 * request, `tok_...` for a token, `grt_...` for a grant.
 */
import { randomBytes } from 'node:crypto';

/** Crockford's base32, lowercase: no i, l, o, u (nothing to misread when typed). */
const ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz';
const LENGTH = 20;

/**
 * A new random id: `newId('apr')` and `newId('apr_')` both give `apr_` + 20
 * characters. The prefix is lowercase letters and digits, starting with a letter.
 */
export function newId(prefix: string): string {
  const p = prefix.endsWith('_') ? prefix.slice(0, -1) : prefix;
  if (!/^[a-z][a-z0-9]{0,15}$/.test(p)) throw new Error(`invalid id prefix ${JSON.stringify(prefix)} (expected lowercase letters and digits, e.g. apr)`);
  // 256 is a multiple of 32: the low 5 bits of a random byte are uniform.
  const bytes = randomBytes(LENGTH);
  let out = `${p}_`;
  for (const b of bytes) out += ALPHABET[b & 31];
  return out;
}
