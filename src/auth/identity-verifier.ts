/**
 * The SCRAM verifier of a configured identity, and of its tokens.
 *
 * A token is another secret of the same identity, checked in the same SCRAM
 * exchange: the server-first message carries one salt and iteration count, so
 * an identity's tokens are derived with its verifier's salt and count. For a
 * `scram:` identity those come from the configured verifier; for a `password:`
 * identity the salt is derived from the password itself (an HMAC of the name
 * keyed with the password's hash), so it is stable across restarts without
 * being guessable from the name.
 */
import crypto from 'node:crypto';
import type { IdentityConfig } from '../config/types.js';
import { formatScramVerifier, makeScramVerifier, parseScramVerifier, SCRAM_DEFAULT_ITERATIONS, type ScramVerifier } from './scram-verifier.js';

export function identitySalt(identity: IdentityConfig): { salt: Buffer; iterations: number } {
  if (identity.scram) {
    const v = parseScramVerifier(identity.scram);
    if (!v) throw new Error(`identity ${identity.name}: invalid SCRAM verifier`);
    return { salt: v.salt, iterations: v.iterations };
  }
  const key = crypto.createHash('sha256').update(identity.password ?? '').digest();
  return { salt: crypto.createHmac('sha256', key).update(`warden-scram-salt\0${identity.name}`).digest().subarray(0, 16), iterations: SCRAM_DEFAULT_ITERATIONS };
}

/** The verifier Warden checks an identity's password against. */
export function identityVerifier(identity: IdentityConfig): ScramVerifier {
  if (identity.scram) {
    const v = parseScramVerifier(identity.scram);
    if (!v) throw new Error(`identity ${identity.name}: invalid SCRAM verifier`);
    return v;
  }
  const { salt, iterations } = identitySalt(identity);
  return makeScramVerifier(identity.password ?? '', { salt, iterations });
}

/** The verifier (PostgreSQL text format) stored for a token of this identity. */
export function tokenVerifier(identity: IdentityConfig, token: string): string {
  const { salt, iterations } = identitySalt(identity);
  return formatScramVerifier(makeScramVerifier(token, { salt, iterations }));
}

/** A new token secret: `wdt_` and 32 random base32 characters (160 bits). */
export function newTokenSecret(): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz234567';
  const bytes = crypto.randomBytes(32);
  let out = 'wdt_';
  for (const b of bytes) out += alphabet[b & 31];
  return out;
}
