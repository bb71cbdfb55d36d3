/**
 * Error and notice texts that could echo a sensitive value, scrubbed for a
 * masked statement: PostgreSQL quotes the offending input at the end of a
 * message (`invalid input syntax for type integer: "ann@example.com"`) and
 * shows key values and rows in the detail (`Key (email)=(ann@example.com)
 * already exists.`, `Failing row contains (...)`). Those parts are replaced by
 * `<masked>`; every text field is also run through the detectors. Identifiers
 * (relation and column names) are kept. Pure.
 */
import type { PgErrorFields } from '../wire/index.js';
import type { MaskerName } from '../config/types.js';
import { DETECTORS, findSensitive } from './detectors.js';
import { maskSpans } from './maskers.js';

export const SCRUBBED = '<masked>';

/** `...: "value"` at the end of a message, and `(...)=(value)` / `contains (...)` in details. */
function scrubText(text: string): string {
  return text
    .replace(/(: )"(?:[^"]|"")*"(\s*)$/s, `$1"${SCRUBBED}"$2`)
    .replace(/\)=\((?:[^()]|\([^()]*\))*\)/g, `)=(${SCRUBBED})`)
    .replace(/(Failing row contains )\((?:[^()]|\([^()]*\))*\)/g, `$1(${SCRUBBED})`)
    .replace(/(\bvalue )"(?:[^"]|"")*"/g, `$1"${SCRUBBED}"`);
}

export function scrubError(f: PgErrorFields, key: Buffer, maskerFor: (type: string) => MaskerName): PgErrorFields {
  const clean = (t: string | undefined): string | undefined => {
    if (t === undefined) return undefined;
    const s = scrubText(t);
    const spans = findSensitive(s, DETECTORS);
    return spans.length > 0 ? maskSpans(s, spans, key, maskerFor) : s;
  };
  const out: PgErrorFields = { ...f, message: clean(f.message)! };
  for (const k of ['detail', 'hint', 'where'] as const) if (f[k] !== undefined) out[k] = clean(f[k]);
  return out;
}
