/**
 * Intent carried with a statement as a sqlcommenter comment:
 *   /* ticket='OPS-12',reason='backfill%20after%20incident' *\/ UPDATE ...
 * (a leading or trailing block comment of key='value' pairs, URL-encoded).
 * Pure; values are length-limited so a client cannot bloat audit records.
 */
export const MAX_INTENT_KEYS = 16;
export const MAX_INTENT_VALUE = 512;

const PAIR = /^\s*([A-Za-z0-9_.%-]{1,64})\s*=\s*'((?:[^'\\]|\\.)*)'\s*$/;

function decode(s: string): string {
  try {
    return decodeURIComponent(s.replace(/\\'/g, "'"));
  } catch {
    return s;
  }
}

function parseBody(body: string): Record<string, string> | null {
  const out: Record<string, string> = {};
  const parts = body.split(/,(?=\s*[A-Za-z0-9_.%-]+\s*=)/);
  let n = 0;
  for (const p of parts) {
    const m = PAIR.exec(p);
    if (!m) return null;
    if (++n > MAX_INTENT_KEYS) break;
    out[decode(m[1]).toLowerCase()] = decode(m[2]).slice(0, MAX_INTENT_VALUE);
  }
  return n > 0 ? out : null;
}

/** The sqlcommenter key/values of a statement's leading or trailing comment (leading wins on conflicts). */
export function parseSqlCommenter(sql: string): Record<string, string> {
  const out: Record<string, string> = {};
  const trailing = /\/\*([^]*?)\*\/\s*;?\s*$/.exec(sql);
  if (trailing) Object.assign(out, parseBody(trailing[1]) ?? {});
  const leading = /^\s*\/\*([^]*?)\*\//.exec(sql);
  if (leading) Object.assign(out, parseBody(leading[1]) ?? {});
  return out;
}

/** Session intent (warden.* startup settings) overlaid with the statement's own. */
export function intentOf(sessionSettings: ReadonlyMap<string, string>, sql: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of sessionSettings) out[k] = v.slice(0, MAX_INTENT_VALUE);
  if (sql.includes('/*')) Object.assign(out, parseSqlCommenter(sql));
  return out;
}
