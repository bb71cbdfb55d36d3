/**
 * IPv4 / IPv6 address helpers for the maskers: parse to bytes, format back (IPv6 in the
 * RFC 5952 compressed form PostgreSQL prints), and zero host bits (cidr values).
 */
import { isIPv4, isIPv6 } from 'node:net';

export type IpFamily = 4 | 6;

export function ipFamily(address: string): IpFamily | undefined {
  if (isIPv4(address)) return 4;
  if (isIPv6(address)) return 6;
  return undefined;
}

export function formatIpv4(bytes: Uint8Array): string {
  return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
}

/** RFC 5952: lower-case hex, no leading zeros, the longest run (≥ 2) of zero groups as `::`. */
export function formatIpv6(bytes: Uint8Array): string {
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((bytes[i] << 8) | bytes[i + 1]);
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

export function formatIp(bytes: Uint8Array): string {
  return bytes.length === 4 ? formatIpv4(bytes) : formatIpv6(bytes);
}

/** The bytes of a textual address (4 or 16), or undefined when it is not one. */
export function parseIp(address: string): Uint8Array | undefined {
  const family = ipFamily(address);
  if (family === 4) return Uint8Array.from(address.split('.').map(Number));
  if (family !== 6) return undefined;
  let text = address;
  let embedded: number[] = [];
  if (text.includes('.')) {
    // Embedded IPv4 (::ffff:1.2.3.4): its two groups come last.
    const i = text.lastIndexOf(':');
    const v4 = text.slice(i + 1).split('.').map(Number);
    embedded = [(v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]];
    text = text.slice(0, i + 1);
    if (!text.endsWith('::')) text = text.slice(0, -1);
  }
  const hexGroups = (s: string): number[] => (s === '' ? [] : s.split(':').map((g) => parseInt(g, 16)));
  const gap = text.indexOf('::');
  let groups: number[];
  if (gap < 0) groups = [...hexGroups(text), ...embedded];
  else {
    const left = hexGroups(text.slice(0, gap));
    const right = [...hexGroups(text.slice(gap + 2)), ...embedded];
    groups = [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
  }
  if (groups.length !== 8) return undefined;
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    out[i * 2] = g >> 8;
    out[i * 2 + 1] = g & 0xff;
  });
  return out;
}

/** Clears the bits after the first `prefix` bits (in place). */
export function zeroHostBits(bytes: Uint8Array, prefix: number): Uint8Array {
  for (let i = 0; i < bytes.length; i++) {
    const keep = Math.max(0, Math.min(8, prefix - i * 8));
    bytes[i] &= keep === 0 ? 0 : (0xff << (8 - keep)) & 0xff;
  }
  return bytes;
}
