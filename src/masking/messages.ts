/**
 * Errors and notices of a masked statement: the upstream's texts can quote the
 * values a statement computed (`invalid input syntax for type json` with the
 * token in DETAIL, `date field value out of range: 2020-123-01`, `Failing row
 * contains (...)`, `RAISE NOTICE '%', ssn`), so for a statement that may see
 * sensitive or detector-scanned data (see {@link mayCarryValues}) every
 * ErrorResponse and NoticeResponse is reduced to its severity, its SQLSTATE
 * and a generic message carrying a Warden request id. The full text, with
 * quoted parts, numbers and whatever the detectors find masked, goes to the
 * audit (errors: `statement.end`) or the log (notices), under the same id.
 *
 * The one exception, an error Warden can prove holds no value: SQLSTATE class
 * 42 (syntax error or access rule violation) with a `position` in the
 * client's own text and no context (`where`). PostgreSQL's parser and
 * analyzer report those before anything runs (undefined column or table,
 * ambiguous reference, a type mismatch in the text); an error raised by code
 * (`RAISE ... USING ERRCODE = '42703'`, PL/Python, SQL functions) always
 * carries a context and never a position, and the executor never sets one.
 *
 * Pure, except for the random request ids.
 */
import crypto from 'node:crypto';
import type { PgErrorFields } from '../wire/index.js';
import type { MaskerName } from '../config/types.js';
import type { AnalysisOk } from '../sql/types.js';
import { DETECTORS, findSensitive } from './detectors.js';
import { maskSpans } from './maskers.js';

/** A Warden request id for a withheld message (what an operator searches the audit and the log for). */
export function requestId(): string {
  return `w-${crypto.randomBytes(6).toString('hex')}`;
}

/** The error was raised by the parser or analyzer for the client's own text (see the module comment). */
export function provablyValueFree(f: PgErrorFields): boolean {
  return f.code.startsWith('42') && f.position !== undefined && f.where === undefined;
}

/**
 * Whether a statement's errors and notices may quote sensitive or detector-scanned values:
 * it touches sensitive columns (`touchesSensitive`), reads or writes any relation (a view's
 * column, a detector-scanned text column, a trigger), runs code (DO, CALL, anything opaque,
 * a function call), is maintenance, or ends a transaction (deferred triggers run at COMMIT,
 * and at SET CONSTRAINTS ... IMMEDIATE). Only a statement that does none of these keeps its
 * upstream texts (SELECT 1/0, SET, SHOW, BEGIN).
 */
export function mayCarryValues(analysis: AnalysisOk, touchesSensitive: boolean): boolean {
  if (touchesSensitive || analysis.opaque) return true;
  for (const s of analysis.statements) {
    if (s.reads.length > 0 || s.writes.length > 0 || s.functions.length > 0) return true;
    if (s.kind === 'do' || s.kind === 'call' || s.kind === 'copy' || s.kind === 'explain') return true;
    if (s.execute || s.prepare) return true;
    // Deferred triggers run at COMMIT (and SET CONSTRAINTS ... IMMEDIATE); maintenance reads tables.
    if (s.kind === 'transaction' && /^\s*(commit|end|prepare\s+transaction)\b/i.test(s.text)) return true;
    if (/^\s*set\s+constraints\b/i.test(s.text)) return true;
    if (s.kind === 'other' && !/^\s*show\b/i.test(s.text)) return true;
  }
  return false;
}

/** What the client receives instead: severity, SQLSTATE and a generic message with the request id. */
export function reducedMessage(f: PgErrorFields, id: string): PgErrorFields {
  const what = f.severity === 'ERROR' || f.severity === 'FATAL' || f.severity === 'PANIC' ? 'error' : 'message';
  return {
    severity: f.severity,
    code: f.code,
    message:
      `${what} text withheld by Warden (SQLSTATE ${f.code}, request ${id}): the statement reads sensitive or scanned data, ` +
      'so the text could quote values; an operator finds it, masked, in the audit log under this request id',
  };
}

const MASKED = '<masked>';

/** A text with quoted parts, digits and detected values masked: kept for the audit and the log. */
export function maskedText(text: string, key: Buffer, maskerFor: (type: string) => MaskerName): string {
  const spans = findSensitive(text, DETECTORS);
  const t = spans.length > 0 ? maskSpans(text, spans, key, maskerFor) : text;
  return t
    .replace(/"(?:[^"]|"")*"/g, `"${MASKED}"`)
    .replace(/\((?:[^()]|\([^()]*\))*\)=\((?:[^()]|\([^()]*\))*\)/g, `(${MASKED})=(${MASKED})`)
    .replace(/(Failing row contains )\((?:[^()]|\([^()]*\))*\)/g, `$1(${MASKED})`)
    .replace(/\d/g, '#');
}

/**
 * Whether the message text itself was written by code (RAISE in PL/pgSQL, plpy.error, ...): then
 * it is all the author's, and nothing of it is kept.
 */
function raisedByCode(f: PgErrorFields): boolean {
  return f.code.startsWith('P0') || f.routine === 'exec_stmt_raise' || (f.where !== undefined && /\b(PL\/|SQL function|function)\b/.test(f.where));
}

/**
 * The record of a withheld message (for the audit and the log): its SQLSTATE, the server routine
 * that raised it, and its message with quoted and parenthesised parts, digits and whatever the
 * detectors find masked — or withheld entirely when code wrote it. DETAIL, HINT and CONTEXT are
 * withheld (they quote input unquoted: `JSON data, line 1: [...]`).
 */
export function recordedMessage(f: PgErrorFields, id: string, key: Buffer, maskerFor: (type: string) => MaskerName): PgErrorFields {
  const message = raisedByCode(f) ? '<message written by code, withheld>' : maskedText(f.message, key, maskerFor);
  const withheld = (['detail', 'hint', 'where'] as const).filter((k) => f[k] !== undefined).map((k) => (k === 'where' ? 'context' : k));
  const notes = [f.routine ? `routine ${f.routine}` : '', withheld.length > 0 ? `${withheld.join(', ')} withheld` : ''].filter(Boolean).join('; ');
  return { severity: f.severity, code: f.code, message: `[request ${id}] ${message}${notes ? ` (${notes})` : ''}` };
}
