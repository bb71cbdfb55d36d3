/**
 * Short human-readable change lines between two catalog definitions of an
 * object ({@link ObjectDefinition}, read by `catalog-snapshot.ts`), for the
 * audit's DDL records and `warden audit`.
 *
 * @module
 */
import { canonicalJson, type JsonValue } from './canonical.js';
import { isJsonObject, type JsonObject, type ObjectDefinition } from './catalog-snapshot.js';
import { relationName } from '../sql/search-path.js';

/** Double-quotes a name for display (`"Odd ""Name"""`). */
function dq(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

const MAX_VALUE_CHARS = 80;

/** A short display form of a value: `none` for null, strings as is, JSON otherwise; long values are cut. */
function show(v: JsonValue | undefined): string {
  const s = v === null || v === undefined ? 'none' : typeof v === 'string' ? v : canonicalJson(v);
  const oneLine = s.replace(/\s+/g, ' ').trim();
  return oneLine.length > MAX_VALUE_CHARS ? `${oneLine.slice(0, MAX_VALUE_CHARS - 1)}…` : oneLine;
}

function same(a: JsonValue | undefined, b: JsonValue | undefined): boolean {
  return canonicalJson(a ?? null) === canonicalJson(b ?? null);
}

/** An array of objects with a string `key` member, as a Map by that member (order kept). */
function byKey(v: JsonValue | undefined, key: string): Map<string, JsonObject> {
  const m = new Map<string, JsonObject>();
  if (!Array.isArray(v)) return m;
  for (const x of v) if (isJsonObject(x) && typeof x[key] === 'string') m.set(x[key], x);
  return m;
}

function stringSet(v: JsonValue | undefined): string[] {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
}

function columnSummary(c: JsonObject): string {
  const parts = [show(c['type'])];
  if (c['not_null'] === true) parts.push('not null');
  if (typeof c['default'] === 'string') parts.push(`default ${show(c['default'])}`);
  if (typeof c['identity'] === 'string') parts.push(`generated ${c['identity']} as identity`);
  if (typeof c['generated'] === 'string') parts.push(`generated always as (${show(c['generated'])})`);
  if (typeof c['collation'] === 'string') parts.push(`collate ${c['collation']}`);
  return parts.join(' ');
}

function diffColumns(a: JsonValue | undefined, b: JsonValue | undefined, out: string[]): void {
  const before = byKey(a, 'name');
  const after = byKey(b, 'name');
  for (const [name] of before) if (!after.has(name)) out.push(`column ${dq(name)} dropped`);
  for (const [name, col] of after) {
    const old = before.get(name);
    if (!old) {
      out.push(`column ${dq(name)} added (${columnSummary(col)})`);
      continue;
    }
    const label = `column ${dq(name)}`;
    if (!same(old['type'], col['type'])) out.push(`${label} type ${show(old['type'])} → ${show(col['type'])}`);
    if (old['not_null'] !== col['not_null']) out.push(`${label} ${col['not_null'] === true ? 'set not null' : 'dropped not null'}`);
    for (const m of ['default', 'identity', 'generated', 'collation']) {
      if (!same(old[m], col[m])) out.push(`${label} ${m} ${show(old[m])} → ${show(col[m])}`);
    }
    if (!same(old['comment'], col['comment'])) out.push(`${label} ${commentChange(old['comment'], col['comment'])}`);
  }
}

/** Lines for a list of named definitions (constraints, indexes, triggers, policies). */
function diffNamed(what: string, a: JsonValue | undefined, b: JsonValue | undefined, out: string[], showAdded = true): void {
  const before = byKey(a, 'name');
  const after = byKey(b, 'name');
  for (const [name] of before) if (!after.has(name)) out.push(`${what} ${dq(name)} dropped`);
  for (const [name, item] of after) {
    const old = before.get(name);
    const def = typeof item['definition'] === 'string' ? item['definition'] : undefined;
    if (!old) {
      out.push(showAdded && def !== undefined ? `${what} ${dq(name)} added (${show(def)})` : `${what} ${dq(name)} added`);
      continue;
    }
    if (same(old, item)) continue;
    const changed = Object.keys({ ...old, ...item }).filter((k) => k !== 'name' && !same(old[k], item[k]));
    if (changed.length === 1 && changed[0] === 'enabled') {
      out.push(`${what} ${dq(name)} enabled ${show(old['enabled'])} → ${show(item['enabled'])}`);
    } else if (changed.length === 1 && changed[0] === 'definition') {
      out.push(`${what} ${dq(name)} changed: ${show(old['definition'])} → ${show(item['definition'])}`);
    } else {
      out.push(`${what} ${dq(name)} changed (${changed.join(', ')})`);
    }
  }
}

function diffStringList(what: string, a: JsonValue | undefined, b: JsonValue | undefined, out: string[]): void {
  const before = stringSet(a);
  const after = stringSet(b);
  for (const x of before) if (!after.includes(x)) out.push(`${what} ${dq(x)} removed`);
  for (const x of after) if (!before.includes(x)) out.push(`${what} ${dq(x)} added`);
}

function commentChange(a: JsonValue | undefined, b: JsonValue | undefined): string {
  if (a === null || a === undefined) return `comment set (${show(b)})`;
  if (b === null || b === undefined) return 'comment removed';
  return `comment changed (${show(a)} → ${show(b)})`;
}

function diffOverloads(name: string, a: JsonValue | undefined, b: JsonValue | undefined, out: string[]): void {
  const before = byKey(a, 'signature');
  const after = byKey(b, 'signature');
  const label = (sig: string, o: JsonObject | undefined): string =>
    `${typeof o?.['routine_kind'] === 'string' ? o['routine_kind'] : 'function'} ${dq(name)}(${sig})`;
  for (const [sig, o] of before) if (!after.has(sig)) out.push(`${label(sig, o)} dropped`);
  for (const [sig, o] of after) {
    const old = before.get(sig);
    if (!old) {
      out.push(`${label(sig, o)} added`);
      continue;
    }
    const l = label(sig, o);
    if (!same(old['routine_kind'], o['routine_kind'])) out.push(`${l} kind ${show(old['routine_kind'])} → ${show(o['routine_kind'])}`);
    if (!same(old['owner'], o['owner'])) out.push(`${l} owner ${show(old['owner'])} → ${show(o['owner'])}`);
    if (!same(old['result'], o['result'])) out.push(`${l} result ${show(old['result'])} → ${show(o['result'])}`);
    else if (!same(old['definition'], o['definition'])) out.push(`${l} definition changed`);
    if (!same(old['privileges'], o['privileges'])) out.push(`${l} privileges ${show(old['privileges'])} → ${show(o['privileges'])}`);
    if (!same(old['comment'], o['comment'])) out.push(`${l} ${commentChange(old['comment'], o['comment'])}`);
  }
}

const RENDER_ORDER = [
  'columns',
  'constraints',
  'indexes',
  'triggers',
  'rls_enabled',
  'rls_forced',
  'policies',
  'definition',
  'overloads',
  'relations',
  'labels',
];

/**
 * Short human-readable lines describing how `before` became `after`:
 * `created`, `dropped`, `kind table → view`, `owner alice → bob`,
 * `column "email" added (text not null)`, `column "x" type integer → bigint`,
 * `constraint "c" dropped`, `index "i" added (CREATE INDEX ...)`,
 * `row level security enabled`, `policy "p" changed (qual)`, `definition changed`,
 * `function "f"(integer) added`, `privileges ... → ...`, `comment set (...)`, ...
 * Empty when nothing changed (or both are `null`). Long values are shortened.
 */
export function diffDefinitions(before: ObjectDefinition | null, after: ObjectDefinition | null): string[] {
  if (!before && !after) return [];
  if (!before) return ['created'];
  if (!after) return ['dropped'];
  const out: string[] = [];
  if (before.kind !== after.kind) out.push(`kind ${before.kind} → ${after.kind}`);
  if (before.schema !== after.schema || before.name !== after.name) {
    out.push(`renamed ${relationName(before.schema, before.name)} → ${relationName(after.schema, after.name)}`);
  }
  if (!same(before.owner, after.owner)) out.push(`owner ${show(before.owner)} → ${show(after.owner)}`);
  const keys = new Set([...Object.keys(before), ...Object.keys(after)]);
  for (const k of ['kind', 'schema', 'name', 'owner']) keys.delete(k);
  const ordered = [...RENDER_ORDER.filter((k) => keys.has(k)), ...[...keys].filter((k) => !RENDER_ORDER.includes(k)).sort()];
  for (const k of ordered) {
    const a = before[k];
    const b = after[k];
    if (same(a, b)) continue;
    switch (k) {
      case 'columns':
        diffColumns(a, b, out);
        break;
      case 'constraints':
        diffNamed('constraint', a, b, out);
        break;
      case 'indexes':
        diffNamed('index', a, b, out);
        break;
      case 'triggers':
        diffNamed('trigger', a, b, out, false);
        break;
      case 'policies':
        diffNamed('policy', a, b, out, false);
        break;
      case 'rls_enabled':
        out.push(`row level security ${b === true ? 'enabled' : 'disabled'}`);
        break;
      case 'rls_forced':
        out.push(`row level security ${b === true ? 'forced' : 'no longer forced'}`);
        break;
      case 'overloads':
        diffOverloads(after.name, a, b, out);
        break;
      case 'relations':
        diffStringList('relation', a, b, out);
        break;
      case 'partitions':
        diffStringList('partition', a, b, out);
        break;
      case 'labels':
        diffStringList('value', a, b, out);
        break;
      case 'definition':
        out.push('definition changed');
        break;
      case 'comment':
        out.push(commentChange(a, b));
        break;
      case 'relation_count':
        break; // the relation lines say it
      case 'sequence':
        if (isJsonObject(a) && isJsonObject(b)) {
          for (const p of Object.keys({ ...a, ...b })) if (!same(a[p], b[p])) out.push(`sequence ${p} ${show(a[p])} → ${show(b[p])}`);
        } else out.push(`sequence ${show(a)} → ${show(b)}`);
        break;
      default:
        out.push(`${k.replace(/_/g, ' ')} ${show(a)} → ${show(b)}`);
    }
  }
  return out;
}
