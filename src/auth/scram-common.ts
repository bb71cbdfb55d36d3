/**
 * SCRAM-SHA-256 primitives (RFC 5802 / RFC 7677) and message-syntax helpers
 * shared by the server and client exchanges. Pure.
 */
import crypto from 'node:crypto';

export const SCRAM_SHA_256 = 'SCRAM-SHA-256';
export const SCRAM_SHA_256_PLUS = 'SCRAM-SHA-256-PLUS';
/** Length of SaltedPassword / keys / proofs / signatures for SHA-256. */
export const SCRAM_KEY_LEN = 32;
/** PostgreSQL's SCRAM_RAW_NONCE_LEN. */
export const SCRAM_NONCE_BYTES = 18;

export function hmacSha256(key: Buffer, data: string | Buffer): Buffer {
  return crypto.createHmac('sha256', key).update(data).digest();
}

export function sha256(data: Buffer): Buffer {
  return crypto.createHash('sha256').update(data).digest();
}

/** Hi(password, salt, i) from RFC 5802, i.e. PBKDF2-HMAC-SHA-256. */
export function saltedPassword(passwordBytes: Buffer, salt: Buffer, iterations: number): Buffer {
  return crypto.pbkdf2Sync(passwordBytes, salt, iterations, SCRAM_KEY_LEN, 'sha256');
}

export function xorBuffers(a: Buffer, b: Buffer): Buffer {
  const out = Buffer.alloc(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i] ^ b[i];
  return out;
}

/** Constant-time comparison (crypto.timingSafeEqual); lengths are not secret. */
export function constantTimeEqual(a: Buffer, b: Buffer): boolean {
  if (a.length !== b.length) return false;
  return crypto.timingSafeEqual(a, b);
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Strict, canonical standard base64 (with padding); null if not. */
export function decodeBase64(s: string): Buffer | null {
  if (!BASE64.test(s)) return null;
  const buf = Buffer.from(s, 'base64');
  return buf.toString('base64') === s ? buf : null;
}

/** RFC 5802 `printable` (%x21-2B / %x2D-7E), non-empty: the nonce alphabet. */
export function isPrintable(s: string): boolean {
  return /^[\x21-\x2b\x2d-\x7e]+$/.test(s);
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Decode a SCRAM message: valid UTF-8, non-empty, no NUL (as PostgreSQL requires). */
export function decodeMessage(data: Buffer): string | null {
  if (!Buffer.isBuffer(data) || data.length === 0 || data.includes(0)) return null;
  try {
    return utf8.decode(data);
  } catch {
    return null;
  }
}

export interface ScramAttribute {
  readonly name: string;
  readonly value: string;
}

/** Split `a=v,b=w,...` (names are single letters, values contain no comma). */
export function parseAttributes(s: string): ScramAttribute[] | null {
  const out: ScramAttribute[] = [];
  for (const part of s.split(',')) {
    if (!/^[A-Za-z]=/.test(part)) return null;
    out.push({ name: part[0], value: part.slice(2) });
  }
  return out;
}

/** ClientSignature := HMAC(StoredKey, AuthMessage). */
export function clientSignature(storedKey: Buffer, authMessage: string): Buffer {
  return hmacSha256(storedKey, authMessage);
}

/** ServerSignature := HMAC(ServerKey, AuthMessage). */
export function serverSignature(serverKey: Buffer, authMessage: string): Buffer {
  return hmacSha256(serverKey, authMessage);
}
