/**
 * Maskers for text values: what a sensitive value becomes on the wire.
 *
 *   fake     realistic, deterministic, type-preserving (fakes.ts); the default
 *   partial  the last four letters/digits kept, other letters/digits → `*`, separators kept
 *            (`***-**-6789`); values with ≤ 4 letters/digits are fully masked
 *   hash     the first 32 hex characters (128 bits) of HMAC-SHA256(key, "warden-hash\0" + value):
 *            the type is not part of the input, so equal values hash equal across columns and
 *            types under one key (joinable), and differ under another key
 *   redact   one `*` per character (Unicode code point)
 *   null     SQL NULL (`null`)
 *
 * `maskSpans` applies maskers to the detected spans of a larger text.
 */
import { createHash, createHmac } from 'node:crypto';
import type { MaskerName } from '../config/types.js';
import { fakeText } from './fakes.js';
import { charClass } from './random.js';

/** The secret HMAC key that keys every masker (fakes, hashes). Any Buffer is one. */
export interface MaskKey extends Buffer {}

/** Derives a 32-byte MaskKey from a configured secret (string or bytes). */
export function deriveMaskKey(secret: string | Buffer): MaskKey {
  return createHash('sha256').update('warden-mask-key\0').update(secret).digest();
}

export function redactText(value: string): string {
  let n = 0;
  for (const _ of value) n++;
  return '*'.repeat(n);
}

export function partialText(value: string): string {
  const chars = Array.from(value);
  let alnum = 0;
  for (const ch of chars) if (charClass(ch) !== 'other') alnum++;
  let keep = alnum > 4 ? 4 : 0;
  for (let i = chars.length - 1; i >= 0; i--) {
    if (charClass(chars[i]) === 'other') continue;
    if (keep > 0) keep--;
    else chars[i] = '*';
  }
  return chars.join('');
}

export function hashText(value: string, key: Buffer): string {
  return createHmac('sha256', key).update(`warden-hash\0${value}`).digest('hex').slice(0, 32);
}

/** Masks one text value of sensitive type `type`; `null` means send SQL NULL. */
export function maskText(value: string, type: string, masker: MaskerName, key: Buffer): string | null {
  switch (masker) {
    case 'null':
      return null;
    case 'fake':
      return fakeText(value, type, key);
    case 'partial':
      return partialText(value);
    case 'hash':
      return hashText(value, key);
    case 'redact':
    default:
      return redactText(value);
  }
}

export interface TypedSpan {
  type: string;
  start: number;
  end: number;
}

/**
 * `text` with each span (non-overlapping, e.g. from findSensitive) replaced by its masked
 * value; a `null` masker inside a text becomes redact.
 */
export function maskSpans(text: string, spans: readonly TypedSpan[], key: Buffer, maskerFor: (type: string) => MaskerName): string {
  if (spans.length === 0) return text;
  const ordered = [...spans].sort((a, b) => a.start - b.start);
  let out = '';
  let at = 0;
  for (const s of ordered) {
    if (s.end <= at || s.end <= s.start) continue;
    if (s.start < at) {
      // Overlaps the previous span: redact the part not yet covered.
      out += redactText(text.slice(at, s.end));
    } else {
      const value = text.slice(s.start, s.end);
      out += text.slice(at, s.start) + (maskText(value, s.type, maskerFor(s.type), key) ?? redactText(value));
    }
    at = s.end;
  }
  return out + text.slice(at);
}
