/**
 * Name patterns used by rules: `schema.table[.column]` relation patterns and
 * simple `*` globs for names (identities, groups, databases, ...).
 *
 * Relation pattern parts follow PostgreSQL identifier rules: an unquoted part is
 * folded to lower case (`Billing.Invoices` = `billing.invoices`), a
 * double-quoted part is kept verbatim (`"Billing".invoices`); `*` inside an
 * unquoted part matches any characters (`billing.*`, `public.cust*`).
 *
 * @module
 */
import type { RelationRef } from '../sql/types.js';

/** Thrown for an invalid rule or pattern. */
export class PolicyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PolicyError';
  }
}

/** Three-valued logic: a rule key can definitely hold, possibly hold (fail-closed), or not hold. */
export const NO = 0;
export const MAYBE = 1;
export const YES = 2;
export type Tri = typeof NO | typeof MAYBE | typeof YES;

/** A compiled glob over a single name. */
export interface NameGlob {
  readonly text: string;
  /** Matches everything (`*`). */
  readonly any: boolean;
  test(name: string): boolean;
}

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Compiles a glob where `*` matches any run of characters; everything else is literal. */
export function nameGlob(text: string): NameGlob {
  if (text === '*') return { text, any: true, test: () => true };
  if (!text.includes('*')) return { text, any: false, test: (n) => n === text };
  const re = new RegExp(`^${text.split('*').map(escapeRegex).join('.*')}$`, 's');
  return { text, any: false, test: (n) => re.test(n) };
}

/** A compiled `schema.table[.column]` pattern. */
export interface RelationPattern {
  readonly text: string;
  readonly schema: NameGlob;
  readonly table: NameGlob;
  /** Present for column patterns. */
  readonly column?: NameGlob;
}

function foldAscii(s: string): string {
  return s.replace(/[A-Z]/g, (c) => c.toLowerCase());
}

/** Splits a dotted identifier pattern into parts (quotes respected, unquoted parts folded). */
export function splitPattern(text: string): string[] {
  const parts: string[] = [];
  let i = 0;
  text = text.trim();
  if (text === '') throw new PolicyError('empty pattern');
  for (;;) {
    let part = '';
    if (text[i] === '"') {
      i++;
      for (;;) {
        if (i >= text.length) throw new PolicyError(`unterminated quote in pattern ${JSON.stringify(text)}`);
        if (text[i] === '"') {
          if (text[i + 1] === '"') {
            part += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        part += text[i++];
      }
      // A quoted part is literal: protect '*' from glob expansion.
      part = part.replace(/\*/g, '\u0000');
    } else {
      const start = i;
      while (i < text.length && text[i] !== '.') i++;
      part = foldAscii(text.slice(start, i).trim());
      if (part === '') throw new PolicyError(`empty name part in pattern ${JSON.stringify(text)}`);
    }
    parts.push(part);
    if (i >= text.length) break;
    if (text[i] !== '.') throw new PolicyError(`unexpected ${JSON.stringify(text[i])} in pattern ${JSON.stringify(text)}`);
    i++;
    if (i >= text.length) throw new PolicyError(`pattern ${JSON.stringify(text)} ends with a dot`);
  }
  return parts;
}

function partGlob(part: string): NameGlob {
  if (!part.includes('\u0000')) return nameGlob(part);
  // Quoted part containing literal '*': exact comparison.
  const literal = part.replace(/\u0000/g, '*');
  return { text: literal, any: false, test: (n) => n === literal };
}

/**
 * Compiles a `tables` pattern: `schema.table`; a bare `table` matches that name in any schema.
 */
export function relationPattern(text: string): RelationPattern {
  const parts = splitPattern(text);
  if (parts.length === 1) return { text, schema: nameGlob('*'), table: partGlob(parts[0]!) };
  if (parts.length === 2) return { text, schema: partGlob(parts[0]!), table: partGlob(parts[1]!) };
  throw new PolicyError(`table pattern ${JSON.stringify(text)} must be schema.table`);
}

/**
 * Compiles a `columns` / sensitive-column pattern: `schema.table.column`;
 * `table.column` and `column` match in any schema / any table.
 */
export function columnPattern(text: string): RelationPattern {
  const parts = splitPattern(text);
  if (parts.length === 1) return { text, schema: nameGlob('*'), table: nameGlob('*'), column: partGlob(parts[0]!) };
  if (parts.length === 2) return { text, schema: nameGlob('*'), table: partGlob(parts[0]!), column: partGlob(parts[1]!) };
  if (parts.length === 3) return { text, schema: partGlob(parts[0]!), table: partGlob(parts[1]!), column: partGlob(parts[2]!) };
  throw new PolicyError(`column pattern ${JSON.stringify(text)} must be schema.table.column`);
}

/**
 * Whether a relation reference matches a pattern's schema and table:
 * YES when every schema it could resolve to matches, MAYBE when some do (or the
 * schema is unknown, `*`), NO otherwise. A schema-wide target (`table` = `*`,
 * e.g. DROP SCHEMA) definitely matches a pattern whose table part is `*` and
 * possibly matches any other.
 */
export function matchRelation(p: RelationPattern, r: RelationRef): Tri {
  let tableTri: Tri;
  if (r.table === '*') tableTri = p.table.any ? YES : MAYBE;
  else tableTri = p.table.test(r.table) ? YES : NO;
  if (tableTri === NO) return NO;
  let some = false;
  let all = true;
  for (const c of r.candidates) {
    if (c === '*' || p.schema.test(c)) some = true;
    if (c === '*' ? !p.schema.any : !p.schema.test(c)) all = false;
  }
  if (!some) return NO;
  return (all ? tableTri : MAYBE) as Tri;
}
