/**
 * The "shape" of a query text: its tokens with every numeric and string
 * literal replaced by a placeholder. Statements that differ only in literal
 * values (pgbench's `WHERE aid = 4711`, an ORM's inlined ids) share one shape,
 * so their analysis can be reused without parsing each text again.
 *
 * Correctness matters more than reach: a shape is produced only for texts in a
 * subset where this scanner and PostgreSQL's lexer cannot disagree about where
 * a literal starts and ends — ASCII only, no backslash (standard_conforming_strings),
 * no `$` (dollar quotes, parameters), no `?` (the placeholders' own character),
 * no comments, no prefixed strings (E'', U&'', B'', X''), no Unicode identifiers
 * (U&"..." UESCAPE '!': the escape literal decides which name is meant), no `?` inside a
 * quoted identifier, no adjacent string continuation, no number glued to letters or dots.
 * Anything else returns null and is analysed by text. Everything that is not a literal stays
 * verbatim in the shape, so equal shapes mean equal texts up to literal values.
 *
 * Placeholders keep the token kind PostgreSQL's scanner gives the literal: `?s` a string
 * (SCONST), `?i` an integer that fits int4 (ICONST), `?n` any other number (FCONST), since
 * the grammar accepts only ICONST in places (`char(3)`, `interval second(3)`). A few grammar
 * rules still check a value (`float(54)` is refused): two such texts are the same tokens, so
 * the one that reuses the other's analysis is refused by the upstream just the same.
 *
 * test/unit/fuzz-literal-shape.test.ts fuzzes all of this against libpg-query's scanner and
 * parser (docs/security.md, "What is fuzzed").
 *
 * Whether an analysis may be shared across literal values is decided
 * separately (see `isLiteralIndependent`).
 */
import type { Analysis } from './types.js';
import { functionEffect, SEQUENCE_FUNCTIONS } from './functions.js';

const MAX_SHAPE_INPUT = 8192;

function isIdentChar(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57) || c === 95;
}
function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}
/** PostgreSQL's lexer's whitespace: space, \t, \n, \r, \f and \v. */
function isSpace(c: number): boolean {
  return c === 32 || c === 9 || c === 10 || c === 13 || c === 12 || c === 11;
}

/**
 * The ASCII characters the scan passes over without a second look (1): not a
 * quote, digit, `.`, `-`, `/`, `?`, `$`, `\`, NUL or DEL. Letters, spaces and most
 * punctuation, so most of a text is skipped by one table lookup per character.
 */
const PLAIN = (() => {
  const t = new Uint8Array(128);
  for (let c = 1; c < 127; c++) t[c] = 1;
  for (const c of [0x22 /* " */, 0x24 /* $ */, 0x27 /* ' */, 0x2d /* - */, 0x2e /* . */, 0x2f /* / */, 0x3f /* ? */, 0x5c /* \ */]) t[c] = 0;
  for (let c = 0x30; c <= 0x39; c++) t[c] = 0; // digits
  return t;
})();

/**
 * Whether digits [i, j) are an integer PostgreSQL's scanner reads as ICONST (it fits int4);
 * anything else (a fraction, an exponent, a bigger integer) is FCONST. The grammar takes
 * only ICONST in places (`char(3)`, `interval second(3)`), so the two must not share a shape.
 */
function isInt4(sql: string, i: number, j: number): boolean {
  let v = 0;
  for (let k = i; k < j; k++) {
    const c = sql.charCodeAt(k);
    if (!isDigit(c)) return false;
    v = v * 10 + (c - 48);
    if (v > 2147483647) return false;
  }
  return true;
}

export function literalShape(sql: string): string | null {
  const n = sql.length;
  if (n > MAX_SHAPE_INPUT) return null;
  let out = '';
  let i = 0;
  let literals = 0;
  let segStart = 0;
  while (i < n) {
    const c = sql.charCodeAt(i);
    if (c < 128 && PLAIN[c] === 1) {
      i++;
      continue;
    }
    // `?` is refused too: the placeholders are spelled with it, so a text holding one verbatim
    // (a `?` operator) could take the shape of a text with a literal in that place.
    if (c > 126 || c === 92 /* \ */ || c === 36 /* $ */ || c === 63 /* ? */ || c === 0) return null;
    if (c === 45 /* - */ && sql.charCodeAt(i + 1) === 45) return null; // -- comment
    if (c === 47 /* / */ && sql.charCodeAt(i + 1) === 42) return null; // /* comment
    if (c === 34 /* " */) {
      // Quoted identifier: kept verbatim. Not a Unicode one (U&"d!0061ta" UESCAPE '!'): its
      // escape character is a string literal, and another one names another column.
      if (i > 0 && sql.charCodeAt(i - 1) === 38 /* & */) return null;
      i++;
      for (;;) {
        if (i >= n) return null;
        const d = sql.charCodeAt(i);
        // A `?` inside would read as a placeholder in the shape.
        if (d === 63) return null;
        if (d === 34) {
          if (sql.charCodeAt(i + 1) === 34) {
            i += 2;
            continue;
          }
          i++;
          break;
        }
        i++;
      }
      continue;
    }
    if (c === 39 /* ' */) {
      const prev = i > 0 ? sql.charCodeAt(i - 1) : 32;
      if (isIdentChar(prev) || prev === 38 /* & */ || prev === 39) return null; // E'' U&'' B'' X'' N''
      let j = i + 1;
      for (;;) {
        if (j >= n) return null;
        const d = sql.charCodeAt(j);
        if (d === 92 || d > 126 || d === 0) return null;
        if (d === 39) {
          if (sql.charCodeAt(j + 1) === 39) {
            j += 2;
            continue;
          }
          j++;
          break;
        }
        j++;
      }
      // 'a' <newline> 'b' is one literal in PostgreSQL: refuse any string followed by a string.
      let k = j;
      while (k < n && isSpace(sql.charCodeAt(k))) k++;
      if (k < n && sql.charCodeAt(k) === 39) return null;
      out += sql.slice(segStart, i) + '?s';
      literals++;
      i = j;
      segStart = i;
      continue;
    }
    if (isDigit(c) || (c === 46 /* . */ && isDigit(sql.charCodeAt(i + 1)))) {
      const prev = i > 0 ? sql.charCodeAt(i - 1) : 32;
      if (isIdentChar(prev)) {
        // `x.1`: a number glued to a name (and the loop below would not advance past the dot).
        if (c === 46) return null;
        // Part of an identifier such as t1: kept verbatim.
        while (i < n && isIdentChar(sql.charCodeAt(i))) i++;
        continue;
      }
      if (prev === 46 /* . */) return null;
      let j = i;
      while (j < n && isDigit(sql.charCodeAt(j))) j++;
      if (sql.charCodeAt(j) === 46) {
        j++;
        while (j < n && isDigit(sql.charCodeAt(j))) j++;
      }
      const e = sql.charCodeAt(j);
      if (e === 101 || e === 69) {
        let k = j + 1;
        const s = sql.charCodeAt(k);
        if (s === 43 || s === 45) k++;
        if (!isDigit(sql.charCodeAt(k))) return null;
        while (k < n && isDigit(sql.charCodeAt(k))) k++;
        j = k;
      }
      const after = j < n ? sql.charCodeAt(j) : 32;
      if (isIdentChar(after) || after === 46 || after === 39 || after === 34) return null;
      out += sql.slice(segStart, i) + (isInt4(sql, i, j) ? '?i' : '?n');
      literals++;
      i = j;
      segStart = i;
      continue;
    }
    i++;
  }
  if (literals === 0) return null;
  return out + sql.slice(segStart);
}

/**
 * Whether a function's literal arguments can change the analysis: the listed
 * side-effect functions (set_config, pg_read_file, dblink, ...) and the
 * sequence functions, whose argument names what they touch (nextval('seq')).
 */
function literalSensitiveFunction(name: string): boolean {
  const bare = (name.includes('.') ? name.slice(name.lastIndexOf('.') + 1) : name).toLowerCase();
  return functionEffect(name) !== undefined || Object.hasOwn(SEQUENCE_FUNCTIONS, bare);
}

/**
 * Whether an analysis would be the same for any literal values in the text:
 * plain DML/queries that call no literal-sensitive function, change no settings
 * and are not opaque. Anything else is cached by exact text only.
 */
export function isLiteralIndependent(a: Analysis): boolean {
  if (!a.ok || a.opaque || a.usesPrepared || a.functions.some(literalSensitiveFunction)) return false;
  for (const s of a.statements) {
    if (s.kind !== 'select' && s.kind !== 'insert' && s.kind !== 'update' && s.kind !== 'delete') return false;
    if (s.opaque || s.sets.length > 0 || s.roleChange || s.resetAll || s.alterSystem) return false;
    if (s.prepare || s.execute || s.deallocate || s.searchPath !== undefined) return false;
  }
  return true;
}
