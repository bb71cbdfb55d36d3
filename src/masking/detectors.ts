/**
 * Detectors for sensitive values embedded in free text (cells of unclassified text columns).
 *
 * `findSensitive(text, enabled)` returns non-overlapping spans, ordered by position. The
 * detectors are deliberately strict (checksums, issuer prefixes, SSA ranges, token formats)
 * because a false positive corrupts data the client did not ask us to touch.
 *
 * Performance: this runs once per cell, so every detector has a cheap pre-check (no '@' → no
 * email, too few digits → no card...) and every regular expression is anchored on a token
 * boundary with a negative look-behind, so the engine never restarts inside a token, and uses
 * only bounded or unambiguous repetitions (no nested quantifiers over overlapping classes):
 * the scan is linear in the text length even on adversarial input.
 */
import { isIPv6 } from 'node:net';
import { isCardNumber, isIban, IBAN_LENGTHS, ssnPartsValid } from './checks.js';

export const DETECTORS = ['email', 'phone', 'credit_card', 'ssn', 'iban', 'ipv4', 'ipv6', 'jwt', 'api_key'] as const;
export type DetectorName = (typeof DETECTORS)[number];

export interface SensitiveSpan {
  type: DetectorName;
  /** UTF-16 offsets into the text, end exclusive. */
  start: number;
  end: number;
}

/** When candidates overlap, the earlier type here wins (then the longer span). */
const PRIORITY: readonly DetectorName[] = ['api_key', 'jwt', 'email', 'iban', 'credit_card', 'ssn', 'phone', 'ipv6', 'ipv4'];

interface Ctx {
  text: string;
  digits: number;
}
type Finder = (ctx: Ctx, add: (start: number, end: number) => void) => void;

// ------------------------------------------------------------------------------ email

const EMAIL_RE = /(?<![A-Za-z0-9._%+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@(?:[A-Za-z0-9-]{1,63}\.){1,8}[A-Za-z]{2,24}(?![A-Za-z0-9-]|\.[A-Za-z0-9])/g;
/** "icon@2x.png" is a file name, not an address. */
const FILE_EXTENSIONS = new Set(
  'png jpg jpeg gif svg webp bmp ico tif tiff css js mjs cjs ts tsx jsx json txt pdf html htm xml yml yaml csv log gz tgz'.split(' '),
);

const findEmail: Finder = ({ text }, add) => {
  if (!text.includes('@')) return;
  for (const m of text.matchAll(EMAIL_RE)) {
    const v = m[0];
    const at = v.indexOf('@');
    const local = v.slice(0, at);
    const labels = v.slice(at + 1).split('.');
    if (local.endsWith('.') || local.includes('..')) continue;
    if (labels.some((l) => l.startsWith('-') || l.endsWith('-'))) continue;
    if (FILE_EXTENSIONS.has(labels[labels.length - 1].toLowerCase())) continue;
    add(m.index, m.index + v.length);
  }
};

// ------------------------------------------------------------------------------ phone

/** `+` and 8–15 digits with single separators between groups (E.164 as people write it). */
const PHONE_INTL_RE = /(?<![\w+])\+[1-9][\d ().-]{6,24}\d(?![\w-]|\.\d)/g;
const PHONE_INTL_SHAPE = /^\+\d+(?:(?:[ .-]|[ .-]?\(|\)[ .-]?)\d+)*$/;
/** North-American formats; the area code cannot start with 0 or 1. */
const PHONE_US_RE =
  /(?<![\w.+-])(?:1[ -])?(?:\([2-9]\d{2}\) ?\d{3}-\d{4}|[2-9]\d{2}-\d{3}-\d{4}|[2-9]\d{2}\.\d{3}\.\d{4})(?![\w-]|\.\d)/g;

function intlPhoneValid(s: string): boolean {
  if (!PHONE_INTL_SHAPE.test(s)) return false;
  let open = 0;
  for (const c of s) {
    if (c === '(') open++;
    else if (c === ')' && --open < 0) return false;
    if (open > 1) return false;
  }
  if (open !== 0) return false;
  const digits = s.replace(/\D/g, '');
  const separated = /[ .()-]/.test(s);
  if (digits.length > 15 || digits.length < (separated ? 8 : 10)) return false;
  return !/^(\d)\1*$/.test(digits);
}

const findPhone: Finder = ({ text, digits }, add) => {
  if (digits < 7) return;
  if (text.includes('+')) {
    for (const m of text.matchAll(PHONE_INTL_RE)) {
      const len = longestValidPrefix(m[0], intlPhoneValid);
      if (len > 0) add(m.index, m.index + len);
    }
  }
  if (digits >= 10) for (const m of text.matchAll(PHONE_US_RE)) add(m.index, m.index + m[0].length);
};

/**
 * The length of the longest prefix of `s` that ends with a digit, is the whole of `s` or is
 * followed by a space (a group boundary, not the middle of "4567-12" or "192.168"), and passes
 * `valid`; 0 when none. Lets a greedy candidate like "4242 4242 4242 4242 5" still yield its
 * valid leading part.
 */
function longestValidPrefix(s: string, valid: (p: string) => boolean): number {
  for (let end = s.length; end > 0; end--) {
    const c = s.charCodeAt(end - 1);
    if (c < 48 || c > 57 || (end < s.length && s[end] !== ' ')) continue;
    if (valid(s.slice(0, end))) return end;
  }
  return 0;
}

// ------------------------------------------------------------------------------ credit cards

/** 13–19 digits, compact or in 3–6 digit groups separated by single spaces or dashes. */
const CARD_RE = /(?<![\w.-])(?:\d{13,19}|\d{3,6}(?:[ -]\d{3,6}){2,5})(?![\w-]|\.\d)/g;

function cardCandidateValid(s: string): boolean {
  const seps = s.match(/[ -]/g);
  if (seps) {
    if (seps.some((c) => c !== seps[0])) return false;
    const groups = s.split(seps[0]);
    if (groups.length < 3 || groups.some((g) => g.length < 3 || g.length > 6)) return false;
  }
  return isCardNumber(s.replace(/[ -]/g, ''));
}

const findCard: Finder = ({ text, digits }, add) => {
  if (digits < 13) return;
  for (const m of text.matchAll(CARD_RE)) {
    const len = longestValidPrefix(m[0], cardCandidateValid);
    if (len > 0) add(m.index, m.index + len);
  }
};

// ------------------------------------------------------------------------------ SSN

const SSN_RE = /(?<![\w.-])(\d{3})-(\d{2})-(\d{4})(?![\w-]|\.\d)/g;

const findSsn: Finder = ({ text, digits }, add) => {
  if (digits < 9 || !text.includes('-')) return;
  for (const m of text.matchAll(SSN_RE)) {
    if (ssnPartsValid(m[1], m[2], m[3])) add(m.index, m.index + m[0].length);
  }
};

// ------------------------------------------------------------------------------ IBAN

/** Compact, or printed in groups of four separated by single spaces. */
const IBAN_RE = /(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?:[A-Z0-9]{11,30}|(?: [A-Z0-9]{4}){2,7}(?: [A-Z0-9]{1,3})?)(?![A-Za-z0-9])/g;

const findIban: Finder = ({ text, digits }, add) => {
  if (digits < 8) return;
  for (const m of text.matchAll(IBAN_RE)) {
    const v = m[0];
    const want = IBAN_LENGTHS[v.slice(0, 2)];
    if (want === undefined) continue;
    // Cut after the `want`-th alphanumeric; a longer match may have swallowed a following word.
    let seen = 0;
    let end = 0;
    while (end < v.length && seen < want) if (v.charCodeAt(end++) !== 32) seen++;
    if (seen < want || (end < v.length && v[end] !== ' ')) continue;
    if (isIban(v.slice(0, end).replace(/ /g, ''))) add(m.index, m.index + end);
  }
};

// ------------------------------------------------------------------------------ IP addresses

const IPV4_RE = /(?<![\w.])(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?!\w|\.\d)/g;

function octetValid(o: string): boolean {
  return (o.length === 1 || o[0] !== '0') && Number(o) <= 255;
}

const findIpv4: Finder = ({ text, digits }, add) => {
  if (digits < 4 || !text.includes('.')) return;
  for (const m of text.matchAll(IPV4_RE)) {
    if (octetValid(m[1]) && octetValid(m[2]) && octetValid(m[3]) && octetValid(m[4])) add(m.index, m.index + m[0].length);
  }
};

const IPV6_CANDIDATE_RE = /(?<![\w:.])[0-9A-Fa-f:.]{2,}/g;

const findIpv6: Finder = ({ text }, add) => {
  if (!text.includes(':')) return;
  for (const m of text.matchAll(IPV6_CANDIDATE_RE)) {
    let v = m[0];
    const after = text.charCodeAt(m.index + v.length);
    if (after === 95 || (after >= 65 && after <= 90) || (after >= 97 && after <= 122)) continue; // g-z, _
    while (v.endsWith('.')) v = v.slice(0, -1);
    if (v.length > 45 || !/[0-9A-Fa-f]/.test(v)) continue;
    let colons = 0;
    for (let i = 0; i < v.length; i++) if (v.charCodeAt(i) === 58) colons++;
    if (colons < 2 || !isIPv6(v)) continue;
    add(m.index, m.index + v.length);
  }
};

// ------------------------------------------------------------------------------ JWT

const JWT_RE = /(?<![\w.-])(e[A-Za-z0-9_-]{9,})\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*(?![\w.-])/g;

function jwtHeaderValid(segment: string): boolean {
  if (segment.length > 4096) return false;
  try {
    const header: unknown = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
    return typeof header === 'object' && header !== null && typeof (header as Record<string, unknown>).alg === 'string';
  } catch {
    return false;
  }
}

const findJwt: Finder = ({ text }, add) => {
  if (!text.includes('.') || (!text.includes('ey') && !text.includes('ew'))) return;
  for (const m of text.matchAll(JWT_RE)) if (jwtHeaderValid(m[1])) add(m.index, m.index + m[0].length);
};

// ------------------------------------------------------------------------------ API keys and secrets

interface KeyPattern {
  /** A literal every match contains: skip the regex when the text lacks it. */
  hint: string;
  re: RegExp;
  check?: (v: string) => boolean;
}

const KEY_PATTERNS: readonly KeyPattern[] = [
  { hint: 'AKIA', re: /(?<![A-Za-z0-9])AKIA[0-9A-Z]{16}(?![A-Za-z0-9])/g },
  { hint: 'ASIA', re: /(?<![A-Za-z0-9])ASIA[0-9A-Z]{16}(?![A-Za-z0-9])/g },
  { hint: 'gh', re: /(?<![A-Za-z0-9_])gh[pousr]_[A-Za-z0-9]{36,255}(?![A-Za-z0-9_])/g },
  { hint: 'github_pat_', re: /(?<![A-Za-z0-9_])github_pat_[A-Za-z0-9_]{22,255}(?![A-Za-z0-9_])/g },
  { hint: 'xox', re: /(?<![A-Za-z0-9-])xox[baprs]-[A-Za-z0-9-]{10,250}(?![A-Za-z0-9-])/g, check: (v) => /\d/.test(v.slice(5)) },
  { hint: 'k_', re: /(?<![A-Za-z0-9_])[sr]k_(?:live|test)_[A-Za-z0-9]{16,247}(?![A-Za-z0-9_])/g },
  { hint: 'AIza', re: /(?<![A-Za-z0-9_-])AIza[0-9A-Za-z_-]{35}(?![0-9A-Za-z_-])/g },
];

const PK_BEGIN = /-----BEGIN (?:[A-Z0-9]{1,20} ){0,3}PRIVATE KEY-----/g;
const PK_END = /-----END (?:[A-Z0-9]{1,20} ){0,3}PRIVATE KEY-----/g;

/** `password=...`, `"secret": "..."`: only the value is reported. */
const ASSIGN_RE =
  /(?<![A-Za-z0-9_])(?:password|passwd|secret|client_secret|secret_key|api_key|apikey|api-key|access_token|auth_token|private_key)["']?[ \t]{0,3}([:=])[ \t]{0,3}["']?([^\s"'`,;&()<>{}[\]]{6,256})/gi;
const ASSIGN_HINT = /pass|secret|api|token|private_key/i;

function assignedValueLooksSecret(sep: string, v: string): boolean {
  if (/^[$:%?@]/.test(v) || /^[*xX.#•]+$/.test(v)) return false; // placeholders, bind parameters
  return sep === '=' || /[^A-Za-z]/.test(v); // "password: required" is prose
}

const findApiKey: Finder = ({ text }, add) => {
  for (const p of KEY_PATTERNS) {
    if (!text.includes(p.hint)) continue;
    for (const m of text.matchAll(p.re)) if (!p.check || p.check(m[0])) add(m.index, m.index + m[0].length);
  }
  if (text.includes('-----BEGIN ')) {
    PK_BEGIN.lastIndex = 0;
    for (let b = PK_BEGIN.exec(text); b; b = PK_BEGIN.exec(text)) {
      PK_END.lastIndex = b.index + b[0].length;
      const e = PK_END.exec(text);
      // A block cut short (no END line) is still a key: mask through the end of the text.
      const end = e ? e.index + e[0].length : text.length;
      add(b.index, end);
      PK_BEGIN.lastIndex = end;
    }
  }
  if (ASSIGN_HINT.test(text)) {
    for (const m of text.matchAll(ASSIGN_RE)) {
      const value = m[2];
      if (!assignedValueLooksSecret(m[1], value)) continue;
      const end = m.index + m[0].length;
      add(end - value.length, end);
    }
  }
};

// ------------------------------------------------------------------------------ driver

const FINDERS: Readonly<Record<DetectorName, Finder>> = {
  email: findEmail,
  phone: findPhone,
  credit_card: findCard,
  ssn: findSsn,
  iban: findIban,
  ipv4: findIpv4,
  ipv6: findIpv6,
  jwt: findJwt,
  api_key: findApiKey,
};

export function isDetectorName(name: string): name is DetectorName {
  return (DETECTORS as readonly string[]).includes(name);
}

function countDigits(text: string): number {
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 48 && c <= 57) n++;
  }
  return n;
}

interface Candidate extends SensitiveSpan {
  rank: number;
}

/**
 * Sensitive values inside `text` found by the `enabled` detectors (unknown names are ignored):
 * non-overlapping, ordered by start. Overlaps resolve by PRIORITY, then the longer span.
 */
export function findSensitive(text: string, enabled: readonly string[]): SensitiveSpan[] {
  if (text.length < 3) return [];
  const ctx: Ctx = { text, digits: -1 };
  const found: Candidate[] = [];
  for (let rank = 0; rank < PRIORITY.length; rank++) {
    const type = PRIORITY[rank];
    if (!enabled.includes(type)) continue;
    if (ctx.digits < 0 && type !== 'email' && type !== 'jwt' && type !== 'api_key' && type !== 'ipv6') ctx.digits = countDigits(text);
    FINDERS[type](ctx, (start, end) => {
      if (end > start) found.push({ type, start, end, rank });
    });
  }
  if (found.length <= 1) return found.map(({ type, start, end }) => ({ type, start, end }));
  found.sort((a, b) => a.rank - b.rank || b.end - b.start - (a.end - a.start) || a.start - b.start);
  const taken = new Uint8Array(text.length);
  const kept: SensitiveSpan[] = [];
  outer: for (const c of found) {
    for (let i = c.start; i < c.end; i++) if (taken[i]) continue outer;
    taken.fill(1, c.start, c.end);
    kept.push({ type: c.type, start: c.start, end: c.end });
  }
  return kept.sort((a, b) => a.start - b.start);
}
