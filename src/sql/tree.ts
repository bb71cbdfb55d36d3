/**
 * Small helpers over libpg-query's JSON parse tree, shared by the analyser's
 * modules: type tests, `{Type: {...}}` unwrapping, string lists and constant
 * values.
 *
 * @module
 */
import type { ParseNode } from './parser.js';

/** A parse-tree node (the inside of `{Type: {...}}`). */
export type Obj = ParseNode;

export function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function arr(v: unknown): unknown[] {
  return Array.isArray(v) ? v : [];
}

export function obj(v: unknown): Obj | undefined {
  return isObj(v) ? v : undefined;
}

/** A list of nodes (anything else: none). */
export function nodes(v: unknown): Obj[] {
  return Array.isArray(v) ? (v as Obj[]) : [];
}

/** The text of a `{String: {sval}}` node; undefined for anything else. */
export function sval(n: unknown): string | undefined {
  const s = obj(obj(n)?.['String'])?.['sval'];
  return typeof s === 'string' ? s : undefined;
}

/** `{Type: {...}}` → `['Type', {...}]`. */
export function unwrap(node: unknown): [string, Obj] | undefined {
  if (!isObj(node)) return undefined;
  const keys = Object.keys(node);
  if (keys.length !== 1) return undefined;
  const k = keys[0]!;
  const v = node[k];
  if (!/^[A-Z]/.test(k) || !isObj(v)) return undefined;
  return [k, v];
}

/** Accepts a node either wrapped as `{Type: {...}}` or already unwrapped. */
export function unwrapAs(node: unknown, type: string): Obj | undefined {
  const u = unwrap(node);
  if (u && u[0] === type) return u[1];
  return isObj(node) && !u ? node : undefined;
}

export function strVal(node: unknown): string | undefined {
  const u = unwrap(node);
  if (u && u[0] === 'String') return typeof u[1]['sval'] === 'string' ? u[1]['sval'] : '';
  return undefined;
}

export function strings(list: unknown): string[] {
  const out: string[] = [];
  for (const x of arr(list)) {
    const s = strVal(x);
    if (s !== undefined) out.push(s);
  }
  return out;
}

/** The value of a constant (A_Const, or a TypeCast of one): string, `null` for NULL, undefined when not constant. */
export function constValue(node: unknown): string | null | undefined {
  const u = unwrap(node);
  if (!u) return undefined;
  const [type, n] = u;
  if (type === 'TypeCast') return constValue(n['arg']);
  if (type === 'A_Const') {
    if (n['isnull']) return null;
    if ('sval' in n) return (obj(n['sval'])?.['sval'] as string | undefined) ?? '';
    if ('ival' in n) return String((obj(n['ival'])?.['ival'] as number | undefined) ?? 0);
    if ('fval' in n) return String(obj(n['fval'])?.['fval'] ?? '0');
    if ('boolval' in n) return obj(n['boolval'])?.['boolval'] ? 'true' : 'false';
    if ('bsval' in n) return String(obj(n['bsval'])?.['bsval'] ?? '');
    return undefined;
  }
  if (type === 'A_Expr' && n['kind'] === 'AEXPR_OP' && strings(n['name']).join('.') === '||') {
    // Constant folding of 'a' || 'b' (used to assemble dynamic SQL).
    const l = constValue(n['lexpr']);
    const r = constValue(n['rexpr']);
    if (typeof l === 'string' && typeof r === 'string') return l + r;
    return undefined;
  }
  return undefined;
}
