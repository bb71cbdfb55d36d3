/**
 * How an approval request's statement text and parameters are shown: in full, or — above a
 * documented cap — cut with a visible marker that gives the full length, the SHA-256 of the
 * full text and the command that prints it. Nothing that shows a request to an approver (the
 * API, `warden approvals show`/`list`, the webhook, the audit) shortens text silently.
 *
 * The state store always keeps the full text; the cap only bounds what one API answer,
 * webhook post or audit record carries (see docs/approvals.md).
 *
 * @module
 */
import crypto from 'node:crypto';

/** Characters of statement text (and of each parameter) an API answer, webhook or audit record carries: 1 MiB. */
export const APPROVAL_TEXT_CAP = 1_048_576;

/** A text as shown, with what identifies the full text. */
export interface ShownText {
  /** The full text, or its first `cap` characters followed by the marker. */
  readonly text: string;
  /** Length of the full text, in characters. */
  readonly length: number;
  /** SHA-256 (hex) of the full text, UTF-8. */
  readonly sha256: string;
  /** True when `text` is not the full text. */
  readonly truncated: boolean;
}

export function sha256Hex(text: string): string {
  return crypto.createHash('sha256').update(text, 'utf8').digest('hex');
}

/** `1048576` → `1,048,576`. */
export function count(n: number): string {
  return n.toLocaleString('en-US');
}

/** The marker appended to a cut text. Starts on its own line so it cannot be read as part of a comment or literal. */
export function truncationMarker(shown: number, length: number, sha256: string, fullCommand: string): string {
  return `\n…[cut by Warden: showing ${count(shown)} of ${count(length)} characters; sha256 of the full text ${sha256}; full text: ${fullCommand}]`;
}

/** The text, or its first `cap` characters and a marker (never a lone surrogate at the cut). */
export function shownText(full: string, cap: number, fullCommand: string): ShownText {
  const sha256 = sha256Hex(full);
  if (full.length <= cap) return { text: full, length: full.length, sha256, truncated: false };
  let end = Math.max(0, cap);
  const last = full.charCodeAt(end - 1);
  if (end > 0 && last >= 0xd800 && last <= 0xdbff) end--;
  return { text: full.slice(0, end) + truncationMarker(end, full.length, sha256, fullCommand), length: full.length, sha256, truncated: true };
}

/** A bind parameter as an approver sees it: the text in full, `\x…` hex (in full) for a binary one, null. */
export function approvalParam(value: Buffer | null, format: number): string | null {
  if (value === null) return null;
  return format === 1 ? `\\x${value.toString('hex')}` : value.toString('utf8');
}

/**
 * Characters that would let a text hide or rewrite what a terminal shows: C0/C1 controls
 * except newline and tab (an escape sequence can overwrite the line),
 * a carriage return not followed by a newline, and Unicode bidi/zero-width format characters
 * ("Trojan Source").
 */
// eslint-disable-next-line no-control-regex
const HIDING = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u200b-\u200f\u2028\u2029\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]|\r(?!\n)/g;

/** The text with every {@link HIDING} character written as a visible `\u{…}` escape. */
export function visibleText(text: string): string {
  return text.replace(HIDING, (c) => `\\u{${c.codePointAt(0)!.toString(16).padStart(4, '0')}}`);
}

/**
 * A one-line abbreviation for lists: newlines shown as `⏎` (so a `--` comment cannot seem to
 * swallow what follows it), hiding characters escaped, and when cut, a visible
 * `… (+N more characters)`.
 */
export function abbreviate(text: string, max: number): string {
  const flat = visibleText(text).replace(/\r\n|\n/g, ' ⏎ ').replace(/\t/g, ' ');
  if (flat.length <= max) return flat;
  return `${flat.slice(0, max)}… (+${count(flat.length - max)} more characters)`;
}

/** One rule that asks for approval, as a request carries it. */
export interface HeldRule {
  readonly rule: string;
  readonly reason?: string;
  readonly groups: readonly string[];
  readonly count: number;
}

/** What the client of a held statement is told at once (see {@link heldNotice}). */
export interface HeldNoticeInput {
  readonly id: string;
  readonly rules: readonly HeldRule[];
  /** For each rule (same order): the identities who may approve it (never the requester). */
  readonly approvers: readonly (readonly string[])[];
  readonly expiresAt: string;
  /** How long requests wait, for the text ("10m"). */
  readonly timeout: string;
  /** The admin API's base URL, when Warden has one. */
  readonly adminUrl?: string;
}

/** Names of approvers shown in a notice at most. */
const NOTICE_APPROVERS = 5;

/**
 * The NoticeResponse a held statement sends its client before it waits (psql prints it as it
 * arrives): the request id, the rules and who may approve (quorum, groups, names), and the
 * exact command — or API call — that approves it. Severity NOTICE, SQLSTATE 00000.
 */
export function heldNotice(o: HeldNoticeInput): { code: string; message: string; detail: string; hint: string } {
  const rules = o.rules.map((r) => `"${r.rule}"${r.reason ? ` (${r.reason})` : ''}`).join(', ');
  const who = o.rules.map((r, i) => {
    const names = o.approvers[i] ?? [];
    const shown = names.slice(0, NOTICE_APPROVERS).join(', ') + (names.length > NOTICE_APPROVERS ? `, … (${names.length} in all)` : '');
    return `${r.count} of group${r.groups.length > 1 ? 's' : ''} ${r.groups.join('/')}${names.length > 0 ? ` (${shown})` : ' (nobody is in it: the request cannot be approved)'}`;
  });
  const everyone = [...new Set(o.approvers.flat())];
  const as = everyone.length === 1 ? everyone[0]! : '<approver>';
  // With the admin URL the command needs no config file, only the approver's WARDEN_PASSWORD.
  const api = o.adminUrl ? ` --admin-url ${o.adminUrl} (API: POST ${o.adminUrl}/api/v1/approvals/${o.id}/approve with {"reason": "..."})` : '';
  return {
    code: '00000',
    message: `statement held for approval: request ${o.id} for rule ${rules}; it runs once approved`,
    detail:
      `Approvers needed: ${who.join('; ')}. ` +
      `The statement waits until it is approved or denied, or expires in ${o.timeout} (at ${o.expiresAt}); cancel it (Ctrl-C) to withdraw it.`,
    hint: `An approver runs: warden approvals approve ${o.id} --as ${as} --reason "..."${api}`,
  };
}
