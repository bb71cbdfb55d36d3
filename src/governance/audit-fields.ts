/**
 * Building an audit record's data as canonical JSON from parts encoded once.
 *
 * A statement's record repeats what its session (identity, database, client)
 * and its analysis and decision (tables, classes, the rule) said for every
 * earlier run of the same statement shape: those parts are encoded once, kept
 * with the object they come from, and spliced into each record. Only what
 * differs per run (the text, parameters, intent from a comment) is encoded
 * each time. The result equals `canonicalJson` of the whole object (members
 * sorted by key, UTF-16 order), so the chain format does not change.
 */
import { CanonicalText, canonicalJson, type EncodableValue } from '../audit/canonical.js';

/** One member, pre-encoded: its key and `"key":value`. */
export type Member = readonly [key: string, text: string];

export function member(key: string, value: EncodableValue): Member {
  return [key, `${JSON.stringify(key)}:${canonicalJson(value)}`];
}

const byKey = (a: Member, b: Member): number => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0);

/** The defined members of an object, encoded and sorted by key. */
export function membersOf(obj: Record<string, EncodableValue | undefined>): Member[] {
  const out: Member[] = [];
  for (const k of Object.keys(obj)) {
    const v = obj[k];
    if (v !== undefined) out.push(member(k, v));
  }
  return out.sort(byKey);
}

/**
 * A record's data being put together: fixed parts (shared, sorted) and
 * members added for this record. A key given twice keeps its last value.
 */
export class RecordFields {
  readonly #fixed: readonly (readonly Member[])[];
  readonly #own: Member[] = [];

  constructor(fixed: readonly (readonly Member[])[]) {
    this.#fixed = fixed;
  }

  set(key: string, value: EncodableValue | undefined): this {
    if (value !== undefined) this.#own.push(member(key, value));
    return this;
  }

  /** The data as canonical JSON, with `extra` members (e.g. a refusal's SQLSTATE). */
  text(extra?: Record<string, EncodableValue | undefined>): CanonicalText {
    const all: Member[] = [];
    for (const part of this.#fixed) for (const m of part) all.push(m);
    for (const m of this.#own) all.push(m);
    if (extra) for (const m of membersOf(extra)) all.push(m);
    all.sort(byKey); // stable: a later member of the same key follows the earlier one
    let out = '{';
    for (let i = 0; i < all.length; i++) {
      if (i + 1 < all.length && all[i + 1][0] === all[i][0]) continue;
      out += out.length === 1 ? all[i][1] : `,${all[i][1]}`;
    }
    return new CanonicalText(`${out}}`);
  }
}

/** A number as canonical JSON (non-finite numbers, which JSON cannot hold, as null). */
function num(n: number): string {
  // String() of a finite number is its JSON (-0 included: both say 0).
  return Number.isFinite(n) ? String(n) : 'null';
}

/** A statement's completion (`statement.end`), written member by member in key order: the most frequent record. */
export function statementEndText(o: {
  affected?: number;
  beginSeq: number;
  durationMs: number;
  error?: string;
  identity: string;
  masked?: readonly string[];
  rows: number;
  session: string;
  sqlstate?: string;
  tags: readonly string[];
}): CanonicalText {
  let t = '{';
  if (o.affected !== undefined) t += `"affected":${num(o.affected)},`;
  t += `"begin_seq":${num(o.beginSeq)},"duration_ms":${num(o.durationMs)},`;
  if (o.error !== undefined) t += `"error":${JSON.stringify(o.error)},`;
  t += `"identity":${JSON.stringify(o.identity)},`;
  if (o.masked !== undefined) t += `"masked":${JSON.stringify(o.masked)},`;
  t += `"rows":${num(o.rows)},"session":${JSON.stringify(o.session)},`;
  if (o.sqlstate !== undefined) t += `"sqlstate":${JSON.stringify(o.sqlstate)},`;
  if (o.tags.length > 0) t += `"tags":${JSON.stringify(o.tags)},`;
  return new CanonicalText(`${t.slice(0, -1)}}`);
}

/** What a statement record's data is built with: {@link RecordFields}, or a filled {@link Template}. */
export interface RecordData {
  set(key: string, value: EncodableValue | undefined): this;
  text(extra?: Record<string, EncodableValue | undefined>): CanonicalText;
}

/**
 * A record's data with holes: the canonical JSON of fixed parts and
 * placeholder members, split at the placeholders, so that each record of the
 * same shape is a few string concatenations (the values' JSON in key order).
 */
export class Template {
  /** Literal text and slot numbers, alternating; starts and ends with literal text. */
  readonly #parts: readonly (string | number)[];

  constructor(fields: RecordFields, slots: readonly string[]) {
    for (const [i, key] of slots.entries()) fields.set(key, new CanonicalText(`\u0001${i}\u0001`));
    // Canonical JSON escapes control characters, so a raw U+0001 is only ever a placeholder's.
    const pieces = fields.text().text.split('\u0001');
    this.#parts = pieces.map((p, i) => (i % 2 === 1 ? Number(p) : p));
  }

  /** The data with each slot's value (canonical JSON text) put in. */
  fill(values: readonly string[]): CanonicalText {
    let out = '';
    const parts = this.#parts;
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i];
      out += typeof p === 'number' ? values[p] : p;
    }
    return new CanonicalText(out);
  }
}

/** {@link RecordData} from a template; anything beyond its slots is built the general way. */
export class TemplateData implements RecordData {
  #full: RecordFields | undefined;

  constructor(
    private readonly template: Template,
    private readonly values: readonly string[],
    private readonly general: () => RecordFields,
  ) {}

  set(key: string, value: EncodableValue | undefined): this {
    this.#full ??= this.general();
    this.#full.set(key, value);
    return this;
  }

  text(extra?: Record<string, EncodableValue | undefined>): CanonicalText {
    if (!this.#full && !extra) return this.template.fill(this.values);
    this.#full ??= this.general();
    return this.#full.text(extra);
  }
}
