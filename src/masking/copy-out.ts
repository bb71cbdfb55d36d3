/**
 * `COPY ... TO STDOUT` for a masked identity: the output gets the masking and the detectors of
 * a query result.
 *
 * - `COPY (query) TO STDOUT` is checked as its query (strict mode's allowlist, the leak
 *   checks); `COPY table [(columns)] TO STDOUT` as `SELECT columns FROM table`.
 * - Each row (one CopyData message per row, as PostgreSQL sends them) is split into fields in
 *   the statement's own format — text (backslash escapes, `\N`) or CSV (quotes, the statement's
 *   DELIMITER, QUOTE, ESCAPE and NULL options) — and each field is masked by its plan:
 *   - `COPY table`, and `COPY (SELECT bare columns or * FROM one relation ...)`: a column of
 *     a sensitive type (per the catalog map, views included) is masked as that type, any
 *     other is scanned by the detectors — as in a result row;
 *   - any other `COPY (query)`: there is no RowDescription to tell base columns from computed
 *     ones, so when the query reads a relation with masked columns (or computes from
 *     sensitive values) every field is masked whole, like a computed column; otherwise every
 *     field is scanned by the detectors, in normalised forms too (normalised.ts).
 * - Binary COPY is refused (its fields would need every type's binary form), and so are
 *   options Warden cannot read with certainty (ENCODING, an escape-string or dollar-quoted
 *   option, more than one statement around a COPY TO).
 *
 * Pure.
 */
import type { MaskerName } from '../config/types.js';
import type { AnalysisOk, RelationRef, StatementAnalysis } from '../sql/types.js';
import { analyzeSql } from '../sql/index.js';
import { parseStatements, type ParseNode } from '../sql/parser.js';
import type { SensitiveColumnMap } from './sensitive-catalog.js';
import { findSensitive } from './detectors.js';
import { maskSpans, maskText } from './maskers.js';
import { hiddenValueType } from './normalised.js';

export interface CopyFormat {
  readonly csv: boolean;
  readonly delimiter: string;
  readonly quote: string;
  readonly escape: string;
  /** The NULL string (`\N` in text, empty in CSV). */
  readonly null: string;
  readonly header: boolean;
}

export type CopyOut =
  | {
      readonly ok: true;
      /** The query the COPY's output is the result of (checked like one). */
      readonly query: string;
      /** `COPY table [(columns)]`: the table and the listed columns (empty: all). */
      readonly table?: { readonly name: string; readonly columns: readonly string[] };
      readonly format: CopyFormat;
    }
  | { readonly ok: false; readonly reason: string };

/** Skips a quoted string, a dollar-quoted string or a comment starting at `i`; returns the index after it, or i. */
function skipLexical(sql: string, i: number): number {
  const c = sql[i];
  if (c === "'" || c === '"') {
    for (let j = i + 1; j < sql.length; j++) {
      if (sql[j] === c) {
        if (sql[j + 1] === c) j++;
        else return j + 1;
      }
    }
    return sql.length;
  }
  if (c === '-' && sql[i + 1] === '-') {
    const nl = sql.indexOf('\n', i);
    return nl < 0 ? sql.length : nl + 1;
  }
  if (c === '/' && sql[i + 1] === '*') {
    let depth = 0;
    for (let j = i; j < sql.length - 1; j++) {
      if (sql[j] === '/' && sql[j + 1] === '*') {
        depth++;
        j++;
      } else if (sql[j] === '*' && sql[j + 1] === '/') {
        depth--;
        j++;
        if (depth === 0) return j + 1;
      }
    }
    return sql.length;
  }
  if (c === '$') {
    const m = /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(sql.slice(i));
    if (m) {
      const end = sql.indexOf(m[0], i + m[0].length);
      return end < 0 ? sql.length : end + m[0].length;
    }
  }
  return i;
}

/** The index of the parenthesis closing the one at `open`, or -1. */
function closing(sql: string, open: number): number {
  let depth = 0;
  for (let i = open; i < sql.length; ) {
    const next = skipLexical(sql, i);
    if (next !== i) {
      i = next;
      continue;
    }
    if (sql[i] === '(') depth++;
    else if (sql[i] === ')' && --depth === 0) return i;
    i++;
  }
  return -1;
}

const IDENT = String.raw`(?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)`;
const QUALIFIED = new RegExp(String.raw`^\s*(${IDENT}(?:\s*\.\s*${IDENT}){0,2})\s*`);

function option(opts: string, name: string): string | undefined {
  const m = new RegExp(String.raw`\b${name}\s+(?:as\s+)?'((?:[^']|'')*)'`, 'i').exec(opts);
  return m ? m[1]!.replace(/''/g, "'") : undefined;
}

/** Reads a `COPY ... TO STDOUT` statement; undefined when it is no COPY TO STDOUT. */
export function readCopyOut(st: StatementAnalysis): CopyOut | undefined {
  if (st.kind !== 'copy') return undefined;
  // COPY table FROM: a write, nothing comes back (COPY table TO never writes; COPY (DELETE ...
  // RETURNING ...) TO does, and its rows come back).
  if (st.classes.has('write') && !/^\s*copy\s*\(/i.test(st.text)) return undefined;
  const text = st.text.replace(/;\s*$/, '');
  const head = /^\s*copy\s*/i.exec(text);
  if (!head) return { ok: false, reason: 'Warden cannot read this COPY statement' };
  let rest: string;
  let query: string;
  let table: { name: string; columns: string[] } | undefined;
  let i = head[0].length;
  if (text[i] === '(') {
    const end = closing(text, i);
    if (end < 0) return { ok: false, reason: 'Warden cannot read the query of this COPY statement' };
    query = text.slice(i + 1, end);
    rest = text.slice(end + 1);
  } else {
    const m = QUALIFIED.exec(text.slice(i));
    if (!m) return { ok: false, reason: 'Warden cannot read the table of this COPY statement' };
    i += m[0].length;
    let columns: string[] = [];
    if (text[i] === '(') {
      const end = closing(text, i);
      if (end < 0) return { ok: false, reason: 'Warden cannot read the columns of this COPY statement' };
      columns = text
        .slice(i + 1, end)
        .split(',')
        .map((c) => c.trim());
      if (columns.some((c) => !new RegExp(`^${IDENT}$`).test(c))) return { ok: false, reason: 'Warden cannot read the columns of this COPY statement' };
      i = end + 1;
    }
    table = { name: m[1]!, columns };
    query = `SELECT ${columns.length > 0 ? columns.join(', ') : '*'} FROM ${m[1]}`;
    rest = text.slice(i);
  }
  // COPY ... FROM: a write, nothing comes back. (COPY (DELETE ... RETURNING ...) TO is a COPY TO.)
  if (/^\s*from\b/i.test(rest)) return undefined;
  const to = /^\s*to\s+stdout\b/i.exec(rest);
  if (!to) return { ok: false, reason: 'COPY TO a file or a program cannot be masked; copy to STDOUT' };
  const opts = rest.slice(to[0].length);
  if (/\$|\bE'/i.test(opts)) return { ok: false, reason: 'Warden cannot read the options of this COPY statement (escape-string or dollar-quoted); write them as plain strings' };
  if (/\bbinary\b/i.test(opts)) return { ok: false, reason: 'binary COPY output cannot be masked field by field; use the text or CSV format' };
  if (/\bencoding\b/i.test(opts)) return { ok: false, reason: 'COPY with ENCODING cannot be masked; leave the output in the client encoding' };
  const csv = /\bcsv\b/i.test(opts);
  const delimiter = option(opts, 'delimiter') ?? (csv ? ',' : '\t');
  const quote = option(opts, 'quote') ?? '"';
  const escape = option(opts, 'escape') ?? quote;
  const nul = option(opts, 'null') ?? (csv ? '' : '\\N');
  if ([delimiter, quote, escape].some((x) => [...x].length !== 1)) return { ok: false, reason: 'Warden cannot read the options of this COPY statement' };
  const header = /\bheader\b(?!\s*(?:=\s*)?\(?\s*(?:false|off|0)\b)/i.test(opts);
  return { ok: true, query, ...(table ? { table } : {}), format: { csv, delimiter, quote, escape, null: nul, header } };
}

// ---- rows -------------------------------------------------------------------------------

/** A field: its value, or null for SQL NULL. */
type Field = string | null;

const TEXT_ESCAPES: Record<string, string> = { b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v' };

/** Splits one text-format row (without its newline). */
export function splitTextRow(line: string, f: CopyFormat): Field[] {
  const out: Field[] = [];
  let raw = '';
  let value = '';
  const push = (): void => {
    out.push(raw === f.null ? null : value);
    raw = '';
    value = '';
  };
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (c === '\\' && i + 1 < line.length) {
      const n = line[++i]!;
      raw += c + n;
      if (TEXT_ESCAPES[n] !== undefined) value += TEXT_ESCAPES[n];
      else if (/[0-7]/.test(n)) {
        let oct = n;
        while (oct.length < 3 && /[0-7]/.test(line[i + 1] ?? '')) oct += line[++i];
        raw += oct.slice(1);
        value += String.fromCharCode(parseInt(oct, 8));
      } else if (n === 'x' && /[0-9a-fA-F]/.test(line[i + 1] ?? '')) {
        let hex = '';
        while (hex.length < 2 && /[0-9a-fA-F]/.test(line[i + 1] ?? '')) hex += line[++i];
        raw += hex;
        value += String.fromCharCode(parseInt(hex, 16));
      } else value += n;
    } else if (c === f.delimiter) push();
    else {
      raw += c;
      value += c;
    }
  }
  push();
  return out;
}

export function joinTextRow(fields: readonly Field[], f: CopyFormat): string {
  return fields
    .map((v) => {
      if (v === null) return f.null;
      let s = '';
      for (const c of v) {
        if (c === '\\') s += '\\\\';
        else if (c === '\n') s += '\\n';
        else if (c === '\r') s += '\\r';
        else if (c === '\t') s += '\\t';
        else if (c === f.delimiter) s += `\\${c}`;
        else s += c;
      }
      return s;
    })
    .join(f.delimiter);
}

/** Splits one CSV row (without its line end). */
export function splitCsvRow(line: string, f: CopyFormat): Field[] {
  const out: Field[] = [];
  let i = 0;
  for (;;) {
    if (line[i] === f.quote) {
      let value = '';
      i++;
      for (; i < line.length; i++) {
        const c = line[i]!;
        if (c === f.escape && (line[i + 1] === f.quote || (f.escape !== f.quote && line[i + 1] === f.escape))) {
          value += line[++i];
        } else if (c === f.quote) {
          i++;
          break;
        } else value += c;
      }
      out.push(value);
    } else {
      const end = line.indexOf(f.delimiter, i);
      const raw = line.slice(i, end < 0 ? line.length : end);
      out.push(raw === f.null ? null : raw);
      i += raw.length;
    }
    if (line[i] === f.delimiter) {
      i++;
      continue;
    }
    return out;
  }
}

export function joinCsvRow(fields: readonly Field[], f: CopyFormat): string {
  return fields
    .map((v) => {
      if (v === null) return f.null;
      // Quoted only when needed, as PostgreSQL does (a value equal to the NULL string too).
      const plain = v !== f.null && ![f.delimiter, f.quote, f.escape, '\r', '\n'].some((c) => v.includes(c)) && !/^\s|\s$/.test(v);
      if (plain) return v;
      let s = f.quote;
      for (const c of v) s += c === f.quote || c === f.escape ? f.escape + c : c;
      return s + f.quote;
    })
    .join(f.delimiter);
}

// ---- masking ----------------------------------------------------------------------------

/** How a COPY's fields are masked: per column (COPY table), or all alike (COPY (query)). */
export type CopyPlan =
  | { readonly kind: 'columns'; readonly types: readonly (string | null)[] }
  | { readonly kind: 'whole'; readonly type: string }
  | { readonly kind: 'scan' };

export interface CopyMaskOptions {
  readonly format: CopyFormat;
  readonly plan: CopyPlan;
  readonly detect: readonly string[];
  readonly key: Buffer;
  readonly maskerFor: (type: string) => MaskerName;
}

/** Masks the rows of one COPY ... TO output (one CopyData body per row). */
export class CopyMasker {
  #first = true;
  constructor(private readonly o: CopyMaskOptions) {}

  #field(v: string, type: string | null, deep: boolean): string | null {
    const { detect, key, maskerFor } = this.o;
    if (type !== null) return maskText(v, type, maskerFor(type), key);
    if (detect.length === 0) return v;
    const spans = findSensitive(v, detect);
    if (spans.length > 0) return maskSpans(v, spans, key, maskerFor);
    if (!deep) return v;
    const hidden = hiddenValueType(v, detect);
    return hidden === undefined ? v : maskText(v, hidden, maskerFor(hidden) === 'null' ? 'redact' : maskerFor(hidden), key);
  }

  /** One row's CopyData body in, the masked body out (undefined: unchanged). */
  row(body: Buffer): Buffer | undefined {
    const { format: f, plan } = this.o;
    if (this.#first) {
      this.#first = false;
      if (f.header) return undefined; // column names: the statement's own text
    }
    const text = body.toString('utf8');
    const eol = /\r?\n$/.exec(text)?.[0] ?? '';
    const line = text.slice(0, text.length - eol.length);
    const fields = f.csv ? splitCsvRow(line, f) : splitTextRow(line, f);
    let changed = false;
    const out = fields.map((v, i) => {
      if (v === null) return v;
      // A field beyond the known columns: masked whole (fail-closed).
      const type = plan.kind === 'columns' ? (i < plan.types.length ? plan.types[i]! : 'text') : plan.kind === 'whole' ? plan.type : null;
      const m = this.#field(v, type, plan.kind === 'scan');
      if (m !== v) changed = true;
      return m;
    });
    if (!changed) return undefined;
    return Buffer.from((f.csv ? joinCsvRow(out, f) : joinTextRow(out, f)) + eol, 'utf8');
  }
}

// ---- the verdict's part -----------------------------------------------------------------

/** A COPY TO STDOUT of a masked identity, read and re-analysed as its query. */
export type CopyStatement =
  | {
      readonly ok: true;
      readonly copy: Extract<CopyOut, { ok: true }>;
      /** The query's analysis. */
      readonly analysis: AnalysisOk;
      /** `COPY table`: the table as the COPY statement's own analysis resolved it (the session's search_path). */
      readonly relation?: RelationRef;
    }
  | { readonly ok: false; readonly reason: string };

/**
 * The COPY ... TO STDOUT of a query string, analysed as its query (with the search_path the
 * COPY's own analysis used, else an unknown one: names resolve against every schema,
 * fail-closed); undefined when the string holds none.
 */
export function copyOutOf(analysis: AnalysisOk, clientEncoding: string | undefined): CopyStatement | undefined {
  const copies = analysis.statements.map(readCopyOut).filter((c): c is CopyOut => c !== undefined);
  if (copies.length === 0) return undefined;
  if (analysis.statements.length > 1) return { ok: false, reason: 'a COPY ... TO among other statements cannot be masked; send it alone' };
  const copy = copies[0]!;
  if (!copy.ok) return copy;
  if (clientEncoding !== undefined && !/^utf-?8$/i.test(clientEncoding)) {
    return { ok: false, reason: `COPY output in client_encoding ${clientEncoding} cannot be masked; use UTF8` };
  }
  // The session's search_path as the COPY's own analysis used it (the schemas an unqualified
  // name could be in); unknown: every schema.
  const unqualified = analysis.statements[0]!.reads.find((r) => !r.qualified);
  const searchPath = unqualified && !unqualified.candidates.includes('*') ? unqualified.candidates : null;
  const inner = analyzeSql(copy.query, { searchPath });
  if (!inner.ok || inner.statements.length !== 1) return { ok: false, reason: 'Warden cannot read the query of this COPY statement' };
  const relation = copy.table && analysis.statements[0]!.reads.length === 1 ? analysis.statements[0]!.reads[0] : undefined;
  return { ok: true, copy, analysis: inner, ...(relation ? { relation } : {}) };
}

const unquote = (c: string): string => (c.startsWith('"') ? c.slice(1, -1).replace(/""/g, '"') : c.toLowerCase());

/** The columns of relation `r` (any schema it may be in) with their masked types, from the catalog map. */
function columnsOf(map: SensitiveColumnMap, r: RelationRef): readonly { readonly name: string; readonly type: string | null }[] | undefined {
  return r.candidates.map((s) => map.columnsOf?.(s, r.table)).find((x) => x !== undefined);
}

/**
 * The output columns of a query of the simplest shape — `SELECT` of bare column references
 * and `*` from one relation (any WHERE, ORDER BY, LIMIT) — by name (`*`: every column, in
 * order); undefined for anything else.
 */
function bareOutputs(query: string): string[] | undefined {
  const parsed = parseStatements(query);
  if (!parsed.ok || parsed.statements.length !== 1) return undefined;
  const sel = parsed.statements[0]!.stmt.SelectStmt as ParseNode | undefined;
  if (!sel || sel.op !== undefined && sel.op !== 'SETOP_NONE') return undefined;
  if (sel.withClause || sel.valuesLists || sel.groupClause || sel.havingClause || sel.distinctClause) return undefined;
  const from = sel.fromClause as ParseNode[] | undefined;
  if (!from || from.length !== 1 || !from[0]!.RangeVar) return undefined;
  const out: string[] = [];
  for (const t of (sel.targetList as ParseNode[] | undefined) ?? []) {
    const val = (t.ResTarget as ParseNode | undefined)?.val as ParseNode | undefined;
    const fields = (val?.ColumnRef as ParseNode | undefined)?.fields as ParseNode[] | undefined;
    if (!fields || fields.length === 0 || fields.length > 2) return undefined;
    const last = fields[fields.length - 1]!;
    if (last.A_Star) out.push('*');
    else {
      const name = (last.String as ParseNode | undefined)?.sval;
      if (typeof name !== 'string') return undefined;
      out.push(name);
    }
  }
  return out.length > 0 ? out : undefined;
}

/**
 * How a COPY's fields are masked, as a query result's columns would be. `COPY table` and a
 * `COPY (query)` of the simplest shape (bare columns and `*` of one relation) get a plan per
 * column, with the types the catalog map gives result columns of that relation (a view over
 * sensitive columns: every column, as in a result); any other `COPY (query)` one plan for all
 * its fields — whole when it reads a relation with masked columns or computes from sensitive
 * values (`sensitiveTypes`, from the leak checks), else the detectors.
 */
export function planCopy(c: Extract<CopyStatement, { ok: true }>, sensitiveTypes: readonly string[], map: SensitiveColumnMap): CopyPlan {
  const st = c.analysis.statements[0]!;
  const rel = c.relation ?? (st.reads.length === 1 ? st.reads[0]! : undefined);
  const names = c.copy.table ? (c.copy.table.columns.length > 0 ? c.copy.table.columns.map(unquote) : ['*']) : bareOutputs(c.copy.query);
  const columns = rel && names ? columnsOf(map, rel) : undefined;
  if (columns && names) {
    const types: (string | null)[] = [];
    for (const n of names) {
      if (n === '*') types.push(...columns.map((x) => x.type));
      else {
        const col = columns.find((x) => x.name === n);
        // A name the map does not know: masked whole (fail-closed).
        types.push(col ? col.type : 'text');
      }
    }
    return { kind: 'columns', types };
  }
  const types = new Set(sensitiveTypes);
  for (const r of st.reads) {
    for (const cand of r.candidates) for (const t of map.maskedColumns(cand, r.table)?.values() ?? []) types.add(t);
  }
  if (types.size === 0) return { kind: 'scan' };
  return { kind: 'whole', type: types.size === 1 ? [...types][0]! : 'text' };
}
