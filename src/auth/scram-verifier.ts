/**
 * SCRAM-SHA-256 verifiers in PostgreSQL's `pg_authid.rolpassword` format:
 *   SCRAM-SHA-256$<iterations>:<salt base64>$<StoredKey base64>:<ServerKey base64>
 * Pure.
 */
import crypto from 'node:crypto';
import { scramPasswordBytes } from './saslprep.js';
import { SCRAM_KEY_LEN, decodeBase64, hmacSha256, saltedPassword, sha256 } from './scram-common.js';

export interface ScramVerifier {
  readonly iterations: number;
  readonly salt: Buffer;
  readonly storedKey: Buffer;
  readonly serverKey: Buffer;
  /**
   * Set on verifiers from {@link mockScramVerifier}: the exchange runs as usual
   * but can never succeed. Not part of the text format.
   */
  readonly doomed?: boolean;
}

export interface MakeScramVerifierOptions {
  /** PBKDF2 iteration count; PostgreSQL's default is 4096. */
  iterations?: number;
  /** Salt; default 16 random bytes (PostgreSQL's SCRAM_DEFAULT_SALT_LEN). */
  salt?: Buffer;
}

export const SCRAM_DEFAULT_ITERATIONS = 4096;
export const SCRAM_DEFAULT_SALT_LEN = 16;
/** Upper bound accepted when parsing (PostgreSQL stores iterations as an int). */
const MAX_ITERATIONS = 0x7fffffff;

const VERIFIER = /^SCRAM-SHA-256\$([1-9][0-9]{0,9}):([^$:]+)\$([^$:]+):([^$:]+)$/;

function checkIterations(iterations: number): void {
  if (!Number.isInteger(iterations) || iterations < 1 || iterations > MAX_ITERATIONS) {
    throw new RangeError(`SCRAM iteration count must be an integer in 1..${MAX_ITERATIONS}, got ${iterations}`);
  }
}

/** Parse a stored verifier; null if it is not a well-formed SCRAM-SHA-256 verifier. */
export function parseScramVerifier(s: string): ScramVerifier | null {
  if (typeof s !== 'string') return null;
  const m = VERIFIER.exec(s);
  if (!m) return null;
  const iterations = Number(m[1]);
  if (iterations > MAX_ITERATIONS) return null;
  const salt = decodeBase64(m[2]);
  const storedKey = decodeBase64(m[3]);
  const serverKey = decodeBase64(m[4]);
  if (!salt || salt.length === 0) return null;
  if (!storedKey || storedKey.length !== SCRAM_KEY_LEN) return null;
  if (!serverKey || serverKey.length !== SCRAM_KEY_LEN) return null;
  return { iterations, salt, storedKey, serverKey };
}

/** Text form, byte-identical to what PostgreSQL stores. */
export function formatScramVerifier(v: ScramVerifier): string {
  return (
    `SCRAM-SHA-256$${v.iterations}:${v.salt.toString('base64')}` +
    `$${v.storedKey.toString('base64')}:${v.serverKey.toString('base64')}`
  );
}

/** Derive StoredKey/ServerKey from already-prepared password bytes. */
function deriveVerifier(passwordBytes: Buffer, salt: Buffer, iterations: number): ScramVerifier {
  const salted = saltedPassword(passwordBytes, salt, iterations);
  const clientKey = hmacSha256(salted, 'Client Key');
  return {
    iterations,
    salt: Buffer.from(salt),
    storedKey: sha256(clientKey),
    serverKey: hmacSha256(salted, 'Server Key'),
  };
}

/** Build a verifier the way PostgreSQL does for `CREATE ROLE ... PASSWORD` (SASLprep included). */
export function makeScramVerifier(password: string, opts: MakeScramVerifierOptions = {}): ScramVerifier {
  const iterations = opts.iterations ?? SCRAM_DEFAULT_ITERATIONS;
  checkIterations(iterations);
  const salt = opts.salt ?? crypto.randomBytes(SCRAM_DEFAULT_SALT_LEN);
  if (salt.length === 0) throw new RangeError('SCRAM salt must not be empty');
  return deriveVerifier(scramPasswordBytes(password), salt, iterations);
}

/**
 * Deterministic, never-matching verifier for a user that does not exist, so
 * that probing usernames is indistinguishable from a wrong password: same
 * salt length and iteration count as real verifiers, a salt that is stable per
 * user (HMAC-SHA-256(secret, username) truncated to 16 bytes), and keys that
 * are equally unguessable (HMACs of the user under other labels).
 * `secret` must be a stable server-side secret (not per-process, or the salt
 * for an unknown user would change across restarts).
 */
export function mockScramVerifier(
  username: string,
  secret: Buffer,
  opts: { iterations?: number } = {},
): ScramVerifier {
  const iterations = opts.iterations ?? SCRAM_DEFAULT_ITERATIONS;
  checkIterations(iterations);
  const user = Buffer.from(username, 'utf8');
  const derive = (label: string): Buffer => hmacSha256(secret, Buffer.concat([Buffer.from(`${label}\0`), user]));
  return {
    iterations,
    salt: hmacSha256(secret, user).subarray(0, SCRAM_DEFAULT_SALT_LEN),
    storedKey: derive('stored-key'),
    serverKey: derive('server-key'),
    doomed: true,
  };
}

/**
 * Whether `password` matches a stored verifier (for password logins that are
 * not SCRAM exchanges, e.g. HTTP Basic on the admin API). Runs the full key
 * derivation even for a mock verifier, so the time taken does not reveal
 * whether the identity exists.
 */
export async function checkScramPassword(password: string, v: ScramVerifier): Promise<boolean> {
  const salted = await new Promise<Buffer>((resolve, reject) =>
    crypto.pbkdf2(scramPasswordBytes(password), v.salt, v.iterations, SCRAM_KEY_LEN, 'sha256', (err, key) => (err ? reject(err) : resolve(key))),
  );
  const storedKey = sha256(hmacSha256(salted, 'Client Key'));
  const same = crypto.timingSafeEqual(storedKey, v.storedKey);
  return same && !v.doomed;
}
