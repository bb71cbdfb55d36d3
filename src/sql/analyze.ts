/**
 * Statement analysis: what a query string does, from PostgreSQL's own parse tree.
 *
 * {@link analyzeSql} splits a query string into statements and, for each one,
 * finds its kind and classes, the relations it reads and writes (resolved with
 * the session's search_path), the columns it references and where, the
 * functions it calls, the settings it changes, and whether its effect is
 * `opaque` (cannot be seen). Statements are analysed in order and later
 * statements see the effects of earlier ones in the same string
 * (`SET search_path`, `PREPARE`, `DEALLOCATE`).
 *
 * The classification rules are documented in docs/policy.md ("How statements
 * are classified") together with the limits of static analysis.
 *
 * Pure: no I/O. Requires {@link initSqlParser} to have completed.
 *
 * @module
 */
import { functionEffect, SEQUENCE_FUNCTIONS } from './functions.js';
import { parseStatements, scanTokens, sliceBytes, type ParseNode } from './parser.js';
import { extractPlpgsql } from './plpgsql.js';
import { analyzeRoutineBody, routineSource, type BodyAnalysis, type NestedAnalyzer } from './code.js';
import {
  creationCandidates,
  parseQualifiedName,
  parseSearchPath,
  qualifiedRelation,
  resolveNameParts,
  resolveUnqualified,
} from './search-path.js';
import type {
  Analysis,
  AnalysisOk,
  AnalyzeContext,
  ColumnRef,
  ColumnUsage,
  RelationRef,
  SettingChange,
  StatementAnalysis,
  StatementClass,
  StatementKind,
} from './types.js';

export { initSqlParser, isSqlParserReady } from './parser.js';

type Obj = ParseNode;

/** Nesting limit for DO bodies / constant EXECUTE strings analysed recursively. */
const MAX_DEPTH = 8;

// ---------------------------------------------------------------------------
// Small JSON helpers

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function arr(v: unknown): unknown[] {
  return Array.isArray(v) ? v : [];
}

function obj(v: unknown): Obj | undefined {
  return isObj(v) ? v : undefined;
}

/** `{Type: {...}}` → `['Type', {...}]`. */
function unwrap(node: unknown): [string, Obj] | undefined {
  if (!isObj(node)) return undefined;
  const keys = Object.keys(node);
  if (keys.length !== 1) return undefined;
  const k = keys[0]!;
  const v = node[k];
  if (!/^[A-Z]/.test(k) || !isObj(v)) return undefined;
  return [k, v];
}

/** Accepts a node either wrapped as `{Type: {...}}` or already unwrapped. */
function unwrapAs(node: unknown, type: string): Obj | undefined {
  const u = unwrap(node);
  if (u && u[0] === type) return u[1];
  return isObj(node) && !u ? node : undefined;
}

function strVal(node: unknown): string | undefined {
  const u = unwrap(node);
  if (u && u[0] === 'String') return typeof u[1]['sval'] === 'string' ? u[1]['sval'] : '';
  return undefined;
}

function strings(list: unknown): string[] {
  const out: string[] = [];
  for (const x of arr(list)) {
    const s = strVal(x);
    if (s !== undefined) out.push(s);
  }
  return out;
}

/** The value of a constant (A_Const, or a TypeCast of one): string, `null` for NULL, undefined when not constant. */
function constValue(node: unknown): string | null | undefined {
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

// ---------------------------------------------------------------------------
// Environment (per query string) and the per-statement builder

/** Prepared statements visible while analysing: the session's plus those of earlier statements. */
class PreparedOverlay {
  private readonly added = new Map<string, Analysis>();
  private readonly removed = new Set<string>();
  private cleared = false;
  constructor(private readonly base: ReadonlyMap<string, Analysis> | undefined) {}
  get(name: string): Analysis | undefined {
    if (this.added.has(name)) return this.added.get(name);
    if (this.cleared || this.removed.has(name)) return undefined;
    return this.base?.get(name);
  }
  has(name: string): boolean {
    return this.get(name) !== undefined;
  }
  set(name: string, a: Analysis): void {
    this.added.set(name, a);
    this.removed.delete(name);
  }
  delete(name: string): void {
    this.added.delete(name);
    this.removed.add(name);
  }
  clear(): void {
    this.added.clear();
    this.cleared = true;
  }
}

interface Env {
  searchPath: readonly string[] | null;
  readonly user?: string;
  readonly defaultSearchPath?: readonly string[];
  readonly prepared: PreparedOverlay;
  usesPrepared: boolean;
  /** Nesting depth of DO bodies / EXECUTEd constant strings. */
  depth: number;
}

interface RangeItem {
  /** Name the item is referenced by (alias or relation name); null for an unaliased join. */
  readonly refname: string | null;
  /** The base relation, for a table reference. */
  readonly rel?: RelationRef;
  /** Base relations its columns can come from. */
  readonly sources: readonly RelationRef[];
  /** `excluded`, `old`, `new`: reachable only by qualified names. */
  readonly pseudo?: boolean;
}

class Scope {
  readonly ctes = new Set<string>();
  /** Relations each CTE of this scope reads or writes (where its columns come from). */
  readonly cteSources = new Map<string, RelationRef[]>();
  readonly items: RangeItem[] = [];
  constructor(readonly parent: Scope | null) {}
  hasCte(name: string): boolean {
    for (let s: Scope | null = this; s; s = s.parent) if (s.ctes.has(name)) return true;
    return false;
  }
  findItem(refname: string): RangeItem | undefined {
    for (let s: Scope | null = this; s; s = s.parent) {
      for (let i = s.items.length - 1; i >= 0; i--) if (s.items[i]!.refname === refname) return s.items[i];
    }
    return undefined;
  }
  /** Items an unqualified column can come from. */
  plainItems(): RangeItem[] {
    return this.items.filter((i) => !i.pseudo);
  }
  /** The nearest scope that has FROM items. */
  nearestWithItems(): Scope | null {
    for (let s: Scope | null = this; s; s = s.parent) if (s.plainItems().length) return s;
    return null;
  }
}

const DDL_KINDS = new Set<StatementKind>(['create', 'alter', 'drop', 'truncate', 'grant', 'revoke']);

function relKey(r: RelationRef): string {
  return `${r.schema}\u0000${r.table}\u0000${r.candidates.join('\u0001')}`;
}

class Builder {
  kind: StatementKind = 'other';
  readonly classes = new Set<StatementClass>();
  readonly reads = new Map<string, RelationRef>();
  readonly writes = new Map<string, RelationRef>();
  readonly columns = new Map<string, ColumnRef>();
  readonly functions = new Set<string>();
  readonly sets: SettingChange[] = [];
  readonly opaqueReasons: string[] = [];
  readonly notes: string[] = [];
  roleChange = false;
  resetAll = false;
  alterSystem = false;
  /** Changes something that is neither a write, DDL nor a setting (locks, maintenance, session state). */
  effect = false;
  prepare?: { name: string; statement: StatementAnalysis };
  execute?: { name: string; found: boolean };
  deallocate?: { name: string | null };
  searchPath?: readonly string[] | null;
  /** What the code this statement defines does (see StatementAnalysis.body). */
  body?: StatementAnalysis;
  /** The routine a CREATE FUNCTION / PROCEDURE defines. */
  defines?: string;
  /** > 0 while visiting a definition (view query, DDL expression) that does not run now. */
  definition = 0;
  /** PL/pgSQL variable names: column references to them are not columns. */
  variables?: ReadonlySet<string>;
  private readonly collectors: Set<RelationRef>[] = [];

  constructor(readonly env: Env) {}

  addRead(r: RelationRef): void {
    this.reads.set(relKey(r), r);
    for (const c of this.collectors) c.add(r);
  }
  addWrite(r: RelationRef): void {
    this.writes.set(relKey(r), r);
    for (const c of this.collectors) c.add(r);
  }
  /** Runs `fn` and returns the relations read or written during it. */
  collect(fn: () => void): RelationRef[] {
    const set = new Set<RelationRef>();
    this.collectors.push(set);
    try {
      fn();
    } finally {
      this.collectors.pop();
    }
    return [...set];
  }
  /** The clause being walked (see {@link ColumnRef.clause}); undefined outside any. */
  clause: ColumnUsage | undefined;
  /** A join condition holds a constant or a parameter. */
  joinConstant = false;
  addColumn(column: string, usage: ColumnUsage, from: readonly RelationRef[], relation?: string, clause: ColumnUsage = this.clause ?? usage): void {
    const uniq: RelationRef[] = [];
    const seen = new Set<string>();
    for (const r of from) {
      const k = relKey(r);
      if (!seen.has(k)) {
        seen.add(k);
        uniq.push(r);
      }
    }
    const key = `${usage}\u0000${clause}\u0000${column}\u0000${relation ?? ''}\u0000${[...seen].sort().join('\u0002')}`;
    if (this.columns.has(key)) return;
    const ref: ColumnRef =
      relation !== undefined
        ? Object.freeze({ column, usage, clause, relation, from: Object.freeze(uniq) })
        : Object.freeze({ column, usage, clause, from: Object.freeze(uniq) });
    this.columns.set(key, ref);
  }
  opaque(reason: string): void {
    if (!this.opaqueReasons.includes(reason)) this.opaqueReasons.push(reason);
  }
  note(n: string): void {
    if (!this.notes.includes(n)) this.notes.push(n);
  }
  resolve(schema: string | undefined, table: string, temp = false): RelationRef {
    if (schema) return qualifiedRelation(schema, table);
    return resolveUnqualified(table, this.env.searchPath, this.env.user, temp);
  }
  /** Resolves a RangeVar (wrapped or not). */
  rangeVar(node: unknown): RelationRef | undefined {
    const rv = unwrapAs(node, 'RangeVar');
    if (!rv || typeof rv['relname'] !== 'string') return undefined;
    const schema = typeof rv['schemaname'] === 'string' ? rv['schemaname'] : undefined;
    return this.resolve(schema, rv['relname'], rv['relpersistence'] === 't');
  }

  /**
   * Merges a nested statement's analysis.
   * @param kinds add its kind and classes (else only the classes of what it touches besides its own kind)
   * @param effects take over its settings, flags and opaque reasons
   * @param asReads record its written relations as reads (plain EXPLAIN)
   */
  absorb(sa: StatementAnalysis, opts: { kinds: boolean; effects: boolean; asReads?: boolean }): void {
    for (const c of sa.classes) {
      if (c === 'read') continue;
      if (!opts.effects && (c === 'opaque' || c === 'write' || c === 'set' || c === 'ddl' || c === 'transaction')) continue;
      if (!opts.kinds && c === sa.kind) continue;
      if (!opts.kinds && !opts.effects) continue;
      this.classes.add(c);
    }
    for (const r of sa.reads) this.addRead(r);
    for (const r of sa.writes) (opts.asReads ? this.addRead(r) : this.addWrite(r));
    for (const c of sa.columns) this.addColumn(c.column, c.usage, c.from, c.relation, c.clause);
    if (sa.joinConstant) this.joinConstant = true;
    for (const f of sa.functions) this.functions.add(f);
    for (const n of sa.notes) this.note(n);
    if (opts.effects) {
      this.sets.push(...sa.sets);
      this.roleChange ||= sa.roleChange;
      this.resetAll ||= sa.resetAll;
      this.alterSystem ||= sa.alterSystem;
      for (const r of sa.opaqueReasons) this.opaque(r);
      if (!sa.classes.has('read')) this.effect = true;
      if (sa.searchPath !== undefined) {
        this.searchPath = sa.searchPath;
        this.env.searchPath = sa.searchPath;
      }
    }
  }

  finish(index: number, text: string): StatementAnalysis {
    const classes = this.classes;
    classes.add(this.kind);
    if (DDL_KINDS.has(this.kind)) classes.add('ddl');
    if (this.kind === 'insert' || this.kind === 'update' || this.kind === 'delete' || this.kind === 'merge') classes.add('write');
    const opaque = this.opaqueReasons.length > 0;
    if (opaque) classes.add('opaque');
    const changes =
      this.effect ||
      opaque ||
      classes.has('write') ||
      classes.has('ddl') ||
      classes.has('set') ||
      classes.has('transaction') ||
      classes.has('call') ||
      this.kind === 'set' ||
      this.kind === 'transaction';
    if (!changes) classes.add('read');
    const sa: StatementAnalysis = {
      index,
      text,
      kind: this.kind,
      classes,
      opaque,
      opaqueReasons: Object.freeze([...this.opaqueReasons]),
      reads: Object.freeze([...this.reads.values()]),
      writes: Object.freeze([...this.writes.values()]),
      columns: Object.freeze([...this.columns.values()]),
      functions: Object.freeze([...this.functions]),
      sets: Object.freeze(this.sets.map((s) => Object.freeze({ ...s }))),
      roleChange: this.roleChange,
      resetAll: this.resetAll,
      alterSystem: this.alterSystem,
      joinConstant: this.joinConstant,
      notes: Object.freeze([...this.notes]),
      ...(this.prepare ? { prepare: Object.freeze(this.prepare) } : {}),
      ...(this.execute ? { execute: Object.freeze(this.execute) } : {}),
      ...(this.deallocate ? { deallocate: Object.freeze(this.deallocate) } : {}),
      ...(this.body ? { body: this.body } : {}),
      ...(this.defines !== undefined ? { defines: this.defines } : {}),
      ...(this.searchPath !== undefined
        ? { searchPath: this.searchPath === null ? null : Object.freeze([...this.searchPath]) }
        : {}),
    };
    return Object.freeze(sa);
  }
}

// ---------------------------------------------------------------------------
// Expressions

const QUERY_TYPES = new Set(['SelectStmt', 'InsertStmt', 'UpdateStmt', 'DeleteStmt', 'MergeStmt']);

function walkExpr(node: unknown, usage: ColumnUsage, scope: Scope | null, b: Builder): void {
  // The clause sticks: once inside a WHERE, ORDER BY, ... everything below (function
  // arguments, subqueries' select lists) is in that clause for leak checks.
  const saved = b.clause;
  if (usage !== 'function-arg' && (saved === undefined || saved === 'projection')) b.clause = usage;
  try {
    if (Array.isArray(node)) {
      for (const x of node) walkExpr(x, usage, scope, b);
      return;
    }
    if (!isObj(node)) return;
    for (const [key, value] of Object.entries(node)) {
      const c0 = key.charCodeAt(0);
      if (c0 >= 65 && c0 <= 90 && isObj(value)) walkNode(key, value, usage, scope, b);
      else if (typeof value === 'object' && value !== null) walkExpr(value, usage, scope, b);
    }
  } finally {
    b.clause = saved;
  }
}

function walkNode(type: string, n: Obj, usage: ColumnUsage, scope: Scope | null, b: Builder): void {
  switch (type) {
    case 'ColumnRef':
      recordColumnRef(n, usage, scope, b);
      return;
    case 'FuncCall':
      recordFuncCall(n, scope, b);
      return;
    case 'SubLink':
      walkExpr(n['testexpr'], usage, scope, b);
      visitQuery(n['subselect'], scope, b);
      return;
    case 'A_Const':
    case 'ParamRef':
      if (b.clause === 'join') b.joinConstant = true;
      return;
    case 'TypeName':
    case 'String':
      return;
    case 'RangeVar': {
      const r = b.rangeVar(n);
      if (r) b.addRead(r);
      return;
    }
    case 'ResTarget':
      walkExpr(n['val'], usage, scope, b);
      return;
    default:
      if (QUERY_TYPES.has(type)) {
        visitQuery({ [type]: n }, scope, b);
        return;
      }
      walkExpr(n, usage, scope, b);
  }
}

function columnFields(n: Obj): string[] {
  return arr(n['fields']).map((f) => {
    const u = unwrap(f);
    if (u && u[0] === 'A_Star') return '*';
    return strVal(f) ?? '?';
  });
}

function recordColumnRef(n: Obj, usage: ColumnUsage, scope: Scope | null, b: Builder): void {
  const fields = columnFields(n);
  if (fields.length === 0) return;
  if (b.variables && b.variables.has(fields[0]!) && !(scope && scope.findItem(fields[0]!))) return;
  const column = fields[fields.length - 1]!;
  if (fields.length === 1) {
    const near = scope?.nearestWithItems() ?? null;
    if (!near) {
      // No FROM: a bare name (e.g. a parameter name); nothing to attribute.
      b.addColumn(column, usage, []);
      return;
    }
    const items = near.plainItems();
    if (column === '*') {
      for (const item of items) b.addColumn('*', usage, item.sources, item.rel?.name);
      return;
    }
    // Any table in scope (including outer scopes, for correlated references) could hold it.
    const from: RelationRef[] = [];
    for (let s: Scope | null = near; s; s = s.parent) for (const it of s.plainItems()) from.push(...it.sources);
    const single = items.length === 1 ? items[0]!.rel : undefined;
    b.addColumn(column, usage, from, single?.name);
    // A bare name equal to a range's name may be a whole-row reference (`SELECT c FROM customers c`).
    const whole = scope?.findItem(column);
    if (whole) b.addColumn('*', usage, whole.sources, whole.rel?.name);
    return;
  }
  // qualifier.column, schema.table.column, db.schema.table.column
  const qualifier = fields[fields.length - 2]!;
  const schema = fields.length >= 3 ? fields[fields.length - 3] : undefined;
  let item: RangeItem | undefined;
  if (schema === undefined) item = scope?.findItem(qualifier);
  else {
    for (let s: Scope | null = scope; s && !item; s = s.parent) {
      item = s.items.find((it) => it.refname === qualifier && it.rel && it.rel.table === qualifier && it.rel.schema === schema);
    }
  }
  if (item) {
    b.addColumn(column, usage, item.sources, item.rel?.name);
    return;
  }
  if (schema !== undefined) {
    const r = qualifiedRelation(schema, qualifier);
    b.addColumn(column, usage, [r], r.name);
    return;
  }
  b.addColumn(column, usage, []);
}

function recordFuncCall(n: Obj, scope: Scope | null, b: Builder): void {
  const parts = strings(n['funcname']);
  const name = parts.join('.');
  const bare = (parts[parts.length - 1] ?? '').toLowerCase();
  b.functions.add(name);
  const args = arr(n['args']);
  const info = functionEffect(name);
  if (info) {
    if (info.effect === 'opaque') {
      b.opaque(`calls ${name}(): ${info.why}`);
    } else if (b.definition === 0) {
      if (info.effect === 'write') b.classes.add('write');
      else if (info.effect === 'other') {
        b.classes.add('other');
        b.effect = true;
      } else if (info.effect === 'set' && bare === 'set_config') recordSetConfig(args, b);
    }
  }
  const seq = SEQUENCE_FUNCTIONS[bare];
  if (seq && args.length > 0) {
    const text = constValue(args[0]);
    const parts2 = typeof text === 'string' ? parseQualifiedName(text) : null;
    if (parts2) {
      const r = resolveNameParts(parts2, b.env.searchPath, b.env.user);
      if (seq === 'write' && b.definition === 0) b.addWrite(r);
      else b.addRead(r);
    }
  }
  walkExpr(args, 'function-arg', scope, b);
  walkExpr(n['agg_order'], 'function-arg', scope, b);
  walkExpr(n['agg_filter'], 'predicate', scope, b);
  const over = obj(n['over']);
  if (over) {
    walkExpr(over['partitionClause'], 'group', scope, b);
    walkExpr(over['orderClause'], 'order', scope, b);
  }
}

function recordSetConfig(args: unknown[], b: Builder): void {
  b.classes.add('set');
  const nameV = constValue(args[0]);
  const value = constValue(args[1]);
  const localV = constValue(args[2]);
  const local = localV === 'true' || localV === 't';
  if (typeof nameV !== 'string') {
    b.sets.push({ name: '*', local, via: 'set_config' });
    b.roleChange = true;
    b.searchPath = null;
    b.env.searchPath = null;
    b.note('set_config() with a non-constant name may change any setting, including role');
    return;
  }
  const name = nameV.toLowerCase();
  b.sets.push(value === undefined ? { name, local, via: 'set_config' } : { name, value, local, via: 'set_config' });
  if (name === 'role' || name === 'session_authorization') b.roleChange = true;
  if (name === 'search_path') {
    const path = typeof value === 'string' ? parseSearchPath(value) : null;
    b.searchPath = path;
    b.env.searchPath = path;
  }
}

// ---------------------------------------------------------------------------
// Queries (SELECT / INSERT / UPDATE / DELETE / MERGE)

function visitQuery(node: unknown, parent: Scope | null, b: Builder): void {
  const u = unwrap(node);
  if (!u) return;
  const [type, n] = u;
  switch (type) {
    case 'SelectStmt':
      visitSelect(n, parent, b);
      return;
    case 'InsertStmt':
      visitInsert(n, parent, b);
      return;
    case 'UpdateStmt':
      visitUpdate(n, parent, b);
      return;
    case 'DeleteStmt':
      visitDelete(n, parent, b);
      return;
    case 'MergeStmt':
      visitMerge(n, parent, b);
      return;
    default: {
      // Utility statements nested in queries (EXECUTE in CREATE TABLE AS, ...).
      const inner = new Builder(b.env);
      analyzeNode(node as Obj, inner, '');
      b.absorb(inner.finish(0, ''), { kinds: true, effects: b.definition === 0 });
    }
  }
}

function aliasOf(n: Obj): string | undefined {
  const a = obj(n['alias']);
  return a && typeof a['aliasname'] === 'string' ? a['aliasname'] : undefined;
}

function addFromItem(node: unknown, scope: Scope, b: Builder): void {
  const u = unwrap(node);
  if (!u) return;
  const [type, n] = u;
  switch (type) {
    case 'RangeVar': {
      const relname = typeof n['relname'] === 'string' ? n['relname'] : '';
      const alias = aliasOf(n) ?? relname;
      if (typeof n['schemaname'] !== 'string' && scope.hasCte(relname)) {
        scope.items.push({ refname: alias, sources: cteSources(scope, relname) });
        return;
      }
      const r = b.rangeVar(n);
      if (!r) return;
      b.addRead(r);
      scope.items.push({ refname: alias, rel: r, sources: [r] });
      return;
    }
    case 'JoinExpr': {
      const before = scope.items.length;
      addFromItem(n['larg'], scope, b);
      const mid = scope.items.length;
      addFromItem(n['rarg'], scope, b);
      const left = scope.items.slice(before, mid);
      const right = scope.items.slice(mid);
      walkExpr(n['quals'], 'join', scope, b);
      for (const col of strings(n['usingClause'])) {
        for (const it of [...left, ...right]) b.addColumn(col, 'join', it.sources, it.rel?.name);
      }
      const alias = aliasOf(n);
      if (alias) scope.items.push({ refname: alias, sources: [...left, ...right].flatMap((i) => i.sources) });
      const ua = obj(n['join_using_alias']);
      if (ua && typeof ua['aliasname'] === 'string') {
        scope.items.push({ refname: ua['aliasname'], sources: [...left, ...right].flatMap((i) => i.sources) });
      }
      return;
    }
    case 'RangeSubselect': {
      const sources = b.collect(() => visitQuery(n['subquery'], scope, b));
      scope.items.push({ refname: aliasOf(n) ?? null, sources });
      return;
    }
    case 'RangeFunction': {
      const sources = b.collect(() => walkExpr(n['functions'], 'function-arg', scope, b));
      scope.items.push({ refname: aliasOf(n) ?? null, sources });
      return;
    }
    case 'RangeTableSample': {
      addFromItem(n['relation'], scope, b);
      walkExpr(n['args'], 'function-arg', scope, b);
      walkExpr(n['repeatable'], 'function-arg', scope, b);
      return;
    }
    default: {
      // RangeTableFunc (XMLTABLE), JsonTable, ...
      const sources = b.collect(() => walkExpr(n, 'function-arg', scope, b));
      scope.items.push({ refname: aliasOf(n) ?? null, sources });
    }
  }
}

/** Relations a CTE's columns come from (recorded when the CTE was visited). */
function cteSources(scope: Scope, name: string): RelationRef[] {
  for (let s: Scope | null = scope; s; s = s.parent) {
    if (s.ctes.has(name)) return s.cteSources.get(name) ?? [];
  }
  return [];
}

function visitWithSources(withClause: unknown, scope: Scope, b: Builder): void {
  const w = obj(withClause);
  if (!w) return;
  const ctes = arr(w['ctes']).map((c) => unwrapAs(c, 'CommonTableExpr')).filter((c): c is Obj => !!c);
  if (w['recursive']) for (const c of ctes) if (typeof c['ctename'] === 'string') scope.ctes.add(c['ctename']);
  for (const c of ctes) {
    const sources = b.collect(() => visitQuery(c['ctequery'], scope, b));
    if (typeof c['ctename'] === 'string') {
      scope.ctes.add(c['ctename']);
      scope.cteSources.set(c['ctename'], sources);
    }
  }
}

function visitSelect(sel: Obj, parent: Scope | null, b: Builder): void {
  const scope = new Scope(parent);
  visitWithSources(sel['withClause'], scope, b);
  const op = sel['op'];
  if (typeof op === 'string' && op !== 'SETOP_NONE') {
    visitSelect(unwrapAs(sel['larg'], 'SelectStmt') ?? {}, scope, b);
    visitSelect(unwrapAs(sel['rarg'], 'SelectStmt') ?? {}, scope, b);
  }
  for (const vl of arr(sel['valuesLists'])) walkExpr(vl, 'projection', scope, b);
  for (const f of arr(sel['fromClause'])) addFromItem(f, scope, b);
  const into = obj(sel['intoClause']);
  if (into) {
    const r = b.rangeVar(into['rel']);
    if (r) b.addWrite(r);
    b.classes.add('write');
    b.classes.add('create');
    b.classes.add('ddl');
    b.note('SELECT ... INTO creates a table and writes rows into it');
  }
  // FOR UPDATE / NO KEY UPDATE / SHARE / KEY SHARE lock rows until the transaction ends; PostgreSQL
  // asks UPDATE privilege for them, as for LOCK TABLE: `lock` and `write` (fail-closed).
  if (arr(sel['lockingClause']).length > 0 && b.definition === 0) {
    b.classes.add('lock');
    b.classes.add('write');
    b.note('SELECT ... FOR UPDATE/SHARE locks rows: counted as lock and write');
  }
  walkExpr(sel['targetList'], 'projection', scope, b);
  walkExpr(sel['distinctClause'], 'group', scope, b);
  walkExpr(sel['whereClause'], 'predicate', scope, b);
  walkExpr(sel['groupClause'], 'group', scope, b);
  walkExpr(sel['havingClause'], 'predicate', scope, b);
  for (const w of arr(sel['windowClause'])) {
    const wd = unwrapAs(w, 'WindowDef');
    if (!wd) continue;
    walkExpr(wd['partitionClause'], 'group', scope, b);
    walkExpr(wd['orderClause'], 'order', scope, b);
  }
  walkExpr(sel['sortClause'], 'order', scope, b);
  walkExpr(sel['limitOffset'], 'predicate', scope, b);
  walkExpr(sel['limitCount'], 'predicate', scope, b);
}

function returningExprs(n: Obj): unknown[] {
  const rc = obj(n['returningClause']);
  return [...arr(n['returningList']), ...arr(rc?.['exprs'])];
}

/** Adds the target relation of a DML statement to the scope under its name and the pseudo-tables. */
function targetItems(scope: Scope, n: Obj, r: RelationRef, extra: string[]): void {
  const rv = unwrapAs(n['relation'], 'RangeVar') ?? {};
  const alias = aliasOf(rv) ?? r.table;
  scope.items.push({ refname: alias, rel: r, sources: [r] });
  for (const e of extra) scope.items.push({ refname: e, rel: r, sources: [r], pseudo: true });
}

function assignTargets(targetList: unknown, r: RelationRef, scope: Scope, b: Builder): void {
  for (const t of arr(targetList)) {
    const rt = unwrapAs(t, 'ResTarget');
    if (!rt) continue;
    if (typeof rt['name'] === 'string') b.addColumn(rt['name'], 'assignment', [r], r.name);
    walkExpr(rt['val'], 'projection', scope, b);
    walkExpr(rt['indirection'], 'projection', scope, b);
  }
}

function dmlTarget(n: Obj, b: Builder, kind: 'insert' | 'update' | 'delete' | 'merge'): RelationRef | undefined {
  b.classes.add(kind);
  b.classes.add('write');
  const r = b.rangeVar(n['relation']);
  if (r) b.addWrite(r);
  return r;
}

function returningOldNew(n: Obj): string[] {
  const names = ['old', 'new'];
  const rc = obj(n['returningClause']);
  for (const o of arr(rc?.['options'])) {
    const ro = unwrapAs(o, 'ReturningOption');
    if (ro && typeof ro['value'] === 'string') names.push(ro['value']);
  }
  return names;
}

function visitInsert(n: Obj, parent: Scope | null, b: Builder): void {
  const scope = new Scope(parent);
  visitWithSources(n['withClause'], scope, b);
  const r = dmlTarget(n, b, 'insert');
  if (!r) return;
  const cols = arr(n['cols']);
  if (cols.length === 0) b.addColumn('*', 'assignment', [r], r.name);
  for (const c of cols) {
    const rt = unwrapAs(c, 'ResTarget');
    if (rt && typeof rt['name'] === 'string') b.addColumn(rt['name'], 'assignment', [r], r.name);
  }
  visitQuery(n['selectStmt'], scope, b);
  targetItems(scope, n, r, ['excluded', ...returningOldNew(n)]);
  const oc = obj(n['onConflictClause']);
  if (oc) {
    const infer = obj(oc['infer']);
    if (infer) {
      for (const e of arr(infer['indexElems'])) {
        const ie = unwrapAs(e, 'IndexElem');
        if (ie && typeof ie['name'] === 'string') b.addColumn(ie['name'], 'predicate', [r], r.name);
        else if (ie) walkExpr(ie['expr'], 'predicate', scope, b);
      }
      walkExpr(infer['whereClause'], 'predicate', scope, b);
    }
    // ON CONFLICT ... DO UPDATE updates the conflicting row: the statement is also an `update`.
    if (oc['action'] === 'ONCONFLICT_UPDATE') b.classes.add('update');
    assignTargets(oc['targetList'], r, scope, b);
    walkExpr(oc['whereClause'], 'predicate', scope, b);
  }
  walkExpr(returningExprs(n), 'returning', scope, b);
}

function visitUpdate(n: Obj, parent: Scope | null, b: Builder): void {
  const scope = new Scope(parent);
  visitWithSources(n['withClause'], scope, b);
  const r = dmlTarget(n, b, 'update');
  if (!r) return;
  targetItems(scope, n, r, returningOldNew(n));
  for (const f of arr(n['fromClause'])) addFromItem(f, scope, b);
  assignTargets(n['targetList'], r, scope, b);
  walkExpr(n['whereClause'], 'predicate', scope, b);
  walkExpr(returningExprs(n), 'returning', scope, b);
}

function visitDelete(n: Obj, parent: Scope | null, b: Builder): void {
  const scope = new Scope(parent);
  visitWithSources(n['withClause'], scope, b);
  const r = dmlTarget(n, b, 'delete');
  if (!r) return;
  targetItems(scope, n, r, returningOldNew(n));
  for (const f of arr(n['usingClause'])) addFromItem(f, scope, b);
  walkExpr(n['whereClause'], 'predicate', scope, b);
  walkExpr(returningExprs(n), 'returning', scope, b);
}

function visitMerge(n: Obj, parent: Scope | null, b: Builder): void {
  const scope = new Scope(parent);
  visitWithSources(n['withClause'], scope, b);
  const r = dmlTarget(n, b, 'merge');
  if (!r) return;
  addFromItem(n['sourceRelation'], scope, b);
  targetItems(scope, n, r, returningOldNew(n));
  walkExpr(n['joinCondition'], 'join', scope, b);
  for (const w of arr(n['mergeWhenClauses'])) {
    const wc = unwrapAs(w, 'MergeWhenClause');
    if (!wc) continue;
    const cmd = wc['commandType'];
    if (cmd === 'CMD_UPDATE') b.classes.add('update');
    else if (cmd === 'CMD_INSERT') b.classes.add('insert');
    else if (cmd === 'CMD_DELETE') b.classes.add('delete');
    walkExpr(wc['condition'], 'predicate', scope, b);
    if (cmd === 'CMD_INSERT' && arr(wc['targetList']).length === 0) b.addColumn('*', 'assignment', [r], r.name);
    assignTargets(wc['targetList'], r, scope, b);
    walkExpr(wc['values'], 'projection', scope, b);
  }
  walkExpr(returningExprs(n), 'returning', scope, b);
}

// ---------------------------------------------------------------------------
// Utility statements

const KIND_BY_TYPE: Record<string, StatementKind> = {};
for (const t of [
  'CreateStmt',
  'CreateSchemaStmt',
  'CreateTableSpaceStmt',
  'CreateExtensionStmt',
  'CreateFdwStmt',
  'CreateForeignServerStmt',
  'CreateForeignTableStmt',
  'CreateUserMappingStmt',
  'ImportForeignSchemaStmt',
  'CreatePolicyStmt',
  'CreateAmStmt',
  'CreateTrigStmt',
  'CreateEventTrigStmt',
  'CreatePLangStmt',
  'CreateRoleStmt',
  'CreateSeqStmt',
  'DefineStmt',
  'CreateDomainStmt',
  'CreateOpClassStmt',
  'CreateOpFamilyStmt',
  'IndexStmt',
  'CreateStatsStmt',
  'CreateFunctionStmt',
  'RuleStmt',
  'CompositeTypeStmt',
  'CreateEnumStmt',
  'CreateRangeStmt',
  'ViewStmt',
  'CreatedbStmt',
  'CreateTableAsStmt',
  'CreateConversionStmt',
  'CreateCastStmt',
  'CreateTransformStmt',
  'CreatePublicationStmt',
  'CreateSubscriptionStmt',
])
  KIND_BY_TYPE[t] = 'create';
for (const t of [
  'AlterTableStmt',
  'AlterCollationStmt',
  'AlterDomainStmt',
  'AlterTableSpaceOptionsStmt',
  'AlterTableMoveAllStmt',
  'AlterExtensionStmt',
  'AlterExtensionContentsStmt',
  'AlterFdwStmt',
  'AlterForeignServerStmt',
  'AlterUserMappingStmt',
  'AlterPolicyStmt',
  'AlterEventTrigStmt',
  'AlterRoleStmt',
  'AlterRoleSetStmt',
  'AlterSeqStmt',
  'AlterOpFamilyStmt',
  'AlterStatsStmt',
  'AlterFunctionStmt',
  'RenameStmt',
  'AlterObjectDependsStmt',
  'AlterObjectSchemaStmt',
  'AlterOwnerStmt',
  'AlterOperatorStmt',
  'AlterTypeStmt',
  'AlterEnumStmt',
  'AlterDatabaseStmt',
  'AlterDatabaseRefreshCollStmt',
  'AlterDatabaseSetStmt',
  'AlterSystemStmt',
  'AlterDefaultPrivilegesStmt',
  'ReassignOwnedStmt',
  'AlterTSDictionaryStmt',
  'AlterTSConfigurationStmt',
  'AlterPublicationStmt',
  'AlterSubscriptionStmt',
  'ReplicaIdentityStmt',
])
  KIND_BY_TYPE[t] = 'alter';
for (const t of [
  'DropStmt',
  'DropTableSpaceStmt',
  'DropUserMappingStmt',
  'DropRoleStmt',
  'DropOwnedStmt',
  'DropdbStmt',
  'DropSubscriptionStmt',
])
  KIND_BY_TYPE[t] = 'drop';

/** Object types whose names are relations (for DROP / COMMENT / SECURITY LABEL / RENAME). */
export const RELATION_OBJECTS: ReadonlySet<string> = new Set([
  'OBJECT_TABLE',
  'OBJECT_VIEW',
  'OBJECT_MATVIEW',
  'OBJECT_SEQUENCE',
  'OBJECT_INDEX',
  'OBJECT_FOREIGN_TABLE',
]);
/** Object types named `relation-name-parts..., object-name` (the relation is all but the last part). */
const ON_RELATION_OBJECTS = new Set(['OBJECT_TRIGGER', 'OBJECT_POLICY', 'OBJECT_RULE', 'OBJECT_TABCONSTRAINT', 'OBJECT_COLUMN']);

function schemaWide(schema: string): RelationRef {
  return qualifiedRelation(schema, '*');
}

/** The name parts of a DDL object given as a List of Strings or a single String. */
function nameParts(object: unknown): string[] {
  const u = unwrap(object);
  if (u && u[0] === 'List') return strings(u[1]['items']);
  const s = strVal(object);
  return s !== undefined ? [s] : [];
}

/** Adds the relation a DDL object name denotes (by object type). */
function objectTarget(objtype: unknown, object: unknown, b: Builder): void {
  if (typeof objtype !== 'string') return;
  const parts = nameParts(object);
  if (RELATION_OBJECTS.has(objtype) && parts.length) {
    b.addWrite(resolveNameParts(parts, b.env.searchPath, b.env.user));
  } else if (ON_RELATION_OBJECTS.has(objtype) && parts.length >= 2) {
    const r = resolveNameParts(parts.slice(0, -1), b.env.searchPath, b.env.user);
    b.addWrite(r);
    if (objtype === 'OBJECT_COLUMN') b.addColumn(parts[parts.length - 1]!, 'assignment', [r], r.name);
  } else if (objtype === 'OBJECT_SCHEMA' && parts.length) {
    b.addWrite(schemaWide(parts[0]!));
  }
}

/** Every relation of the database (VACUUM or REINDEX DATABASE without a list, DROP OWNED, ...). */
const EVERY_RELATION: RelationRef = Object.freeze({ name: '*.*', schema: '*', table: '*', qualified: false, candidates: Object.freeze(['*']) });

/** The relations a maintenance command rewrites: those it names, else a schema or every relation. */
function maintenanceTargets(type: string, n: Obj, b: Builder): void {
  if (type === 'CheckPointStmt') return;
  if (type === 'ReindexStmt' && n['kind'] === 'REINDEX_OBJECT_SCHEMA' && typeof n['name'] === 'string') {
    b.addWrite(schemaWide(n['name']));
    return;
  }
  if (type === 'ReindexStmt' && n['kind'] === 'REINDEX_OBJECT_SYSTEM') {
    b.addWrite(schemaWide('pg_catalog'));
    return;
  }
  const named = b.collect(() => walkDdl(type === 'VacuumStmt' ? n['rels'] : n['relation'], b));
  if (named.length === 0) b.addWrite(EVERY_RELATION);
}

/**
 * Generic walk of a DDL / utility statement: every relation it names is a target
 * (`writes`), except foreign-key referenced tables (`reads`); function calls are
 * recorded (only an opaque function changes the classification: expressions in
 * definitions do not run now); nested queries are visited as reads.
 */
function walkDdl(node: unknown, b: Builder, key?: string): void {
  if (Array.isArray(node)) {
    for (const x of node) walkDdl(x, b, key);
    return;
  }
  if (!isObj(node)) return;
  if (typeof node['relname'] === 'string' && !unwrap(node)) {
    const r = b.rangeVar(node);
    if (r) (key === 'pktable' ? b.addRead(r) : b.addWrite(r));
    return;
  }
  const u = unwrap(node);
  if (u) {
    const [type, n] = u;
    if (type === 'RangeVar') {
      const r = b.rangeVar(n);
      if (r) (key === 'pktable' ? b.addRead(r) : b.addWrite(r));
      return;
    }
    if (type === 'FuncCall') {
      b.definition++;
      try {
        recordFuncCall(n, null, b);
      } finally {
        b.definition--;
      }
      return;
    }
    if (type === 'ColumnRef') return;
    if (QUERY_TYPES.has(type)) {
      b.definition++;
      try {
        visitQuery(node, null, b);
      } finally {
        b.definition--;
      }
      return;
    }
    walkDdl(n, b, key);
    return;
  }
  for (const [k, v] of Object.entries(node)) walkDdl(v, b, k);
}

function renderSetArgs(args: unknown[]): string | undefined {
  const vals: string[] = [];
  for (const a of args) {
    const v = constValue(a);
    if (typeof v !== 'string') return undefined;
    vals.push(v);
  }
  return vals.join(', ');
}

/** Records a VariableSetStmt (SET / RESET / ALTER SYSTEM SET / ALTER ROLE ... SET). */
function recordSet(n: Obj, via: 'session' | 'alter-system' | 'alter-role' | 'alter-database', b: Builder): void {
  const kind = n['kind'];
  const rawName = typeof n['name'] === 'string' ? n['name'] : '*';
  const name = rawName.toLowerCase();
  const local = n['is_local'] === true;
  const args = arr(n['args']);
  if (kind === 'VAR_RESET_ALL') {
    const v: SettingChange['via'] = via === 'session' ? 'reset-all' : via;
    b.sets.push({ name: '*', value: null, local: false, via: v });
    if (via === 'session') {
      b.resetAll = true;
      const after = b.env.defaultSearchPath ?? null;
      b.searchPath = after;
      b.env.searchPath = after;
    }
    return;
  }
  let value: string | null | undefined;
  if (kind === 'VAR_SET_VALUE') value = renderSetArgs(args);
  else if (kind === 'VAR_SET_DEFAULT' || kind === 'VAR_RESET') value = null;
  const change: SettingChange = {
    name,
    ...(value !== undefined ? { value } : {}),
    local,
    via: via === 'session' ? (kind === 'VAR_RESET' ? 'reset' : 'set') : via,
  };
  b.sets.push(change);
  if (via !== 'session') return;
  if (name === 'role' || name === 'session_authorization') b.roleChange = true;
  if (name === 'search_path') {
    let after: readonly string[] | null;
    if (kind === 'VAR_SET_VALUE') {
      // Each value is one schema name verbatim (SET quotes string literals as identifiers).
      const names: string[] = [];
      let ok = true;
      for (const a of args) {
        const v = constValue(a);
        if (typeof v !== 'string') ok = false;
        else names.push(v);
      }
      after = ok ? names : null;
    } else if (kind === 'VAR_SET_CURRENT') {
      after = b.env.searchPath;
    } else {
      after = b.env.defaultSearchPath ?? null;
    }
    b.searchPath = after;
    b.env.searchPath = after;
  }
}

function explainAnalyzes(options: unknown): boolean {
  for (const o of arr(options)) {
    const d = unwrapAs(o, 'DefElem');
    if (!d || String(d['defname']).toLowerCase() !== 'analyze') continue;
    const arg = d['arg'];
    if (arg === undefined) return true;
    const u = unwrap(arg);
    let v: string | undefined;
    if (u?.[0] === 'String') v = String(u[1]['sval'] ?? '');
    else if (u?.[0] === 'Boolean') v = u[1]['boolval'] ? 'true' : 'false';
    else if (u?.[0] === 'Integer') v = String(u[1]['ival'] ?? 0);
    else if (u?.[0] === 'A_Const') v = String(constValue(arg) ?? '');
    // Anything that is not clearly false counts as ANALYZE (fail-closed).
    if (v !== undefined && ['false', 'off', '0', 'no', 'f', 'n'].includes(v.toLowerCase())) continue;
    return true;
  }
  return false;
}

/** Wraps one statement analysis as a standalone Analysis (for the prepared-statement map). */
export function analysisOfStatement(sa: StatementAnalysis, sql = sa.text): AnalysisOk {
  return aggregate(sql, [sa], false);
}

/** Re-resolves unqualified names with the current search_path (a prepared statement is re-parsed when it changes). */
function reresolve(r: RelationRef, env: Env): RelationRef {
  if (r.qualified || r.schema === 'pg_temp') return r;
  const now = resolveUnqualified(r.table, env.searchPath, env.user);
  const candidates = [...now.candidates];
  for (const c of r.candidates) if (!candidates.includes(c)) candidates.push(c);
  return Object.freeze({ ...now, candidates: Object.freeze(candidates) });
}

function reresolveStatement(sa: StatementAnalysis, env: Env): StatementAnalysis {
  const map = (rs: readonly RelationRef[]) => Object.freeze(rs.map((r) => reresolve(r, env)));
  return Object.freeze({
    ...sa,
    reads: map(sa.reads),
    writes: map(sa.writes),
    columns: Object.freeze(sa.columns.map((c) => Object.freeze({ ...c, from: map(c.from) }))),
  });
}

/** Analyses `sql` (text found inside another statement) as statements of their own. */
function analyzeNested(sql: string, env: Env, variables?: ReadonlySet<string>): StatementAnalysis[] | string {
  if (env.depth >= MAX_DEPTH) return 'nested too deeply to analyse';
  const parsed = parseStatements(sql);
  if (!parsed.ok) return parsed.failure.message;
  env.depth++;
  try {
    return parsed.statements.map((raw, i) => {
      const b = new Builder(env);
      if (variables) b.variables = variables;
      const text = sliceBytes(sql, raw.location, raw.length ? raw.location + raw.length : undefined).trim();
      analyzeNode(raw.stmt, b, text);
      return b.finish(i, text);
    });
  } finally {
    env.depth--;
  }
}

/** Text after the assignment operator of a PL/pgSQL assignment (`x := expr`). */
function assignmentValue(sql: string): string | undefined {
  let tokens;
  try {
    tokens = scanTokens(sql);
  } catch {
    return undefined;
  }
  let depth = 0;
  for (const t of tokens) {
    if (t.text === '(' || t.text === '[') depth++;
    else if (t.text === ')' || t.text === ']') depth--;
    else if (depth === 0 && (t.text === ':=' || t.text === '=')) return sliceBytes(sql, t.end);
  }
  return undefined;
}

function analyzeDo(n: Obj, b: Builder): void {
  let language = 'plpgsql';
  let body: string | undefined;
  for (const a of arr(n['args'])) {
    const d = unwrapAs(a, 'DefElem');
    if (!d) continue;
    if (d['defname'] === 'language') language = (strVal(d['arg']) ?? language).toLowerCase();
    if (d['defname'] === 'as') body = strVal(d['arg']);
  }
  if (language !== 'plpgsql') {
    b.opaque(`DO block in language ${language}`);
    return;
  }
  if (b.env.depth >= MAX_DEPTH) {
    b.opaque('DO block nested too deeply to analyse');
    return;
  }
  const ex = extractPlpgsql(body ?? '');
  if (!ex.ok) {
    b.opaque(`DO block that PL/pgSQL cannot parse: ${ex.error}`);
    return;
  }
  let dynamic = false;
  for (const piece of ex.pieces) {
    let sql: string | undefined;
    let asStatement = false;
    if (piece.mode === 'statement') {
      sql = piece.sql;
      asStatement = true;
    } else if (piece.mode === 'expression') sql = `SELECT ${piece.sql}`;
    else if (piece.mode === 'assignment') {
      const v = assignmentValue(piece.sql);
      sql = v === undefined ? undefined : `SELECT ${v}`;
    } else {
      // Dynamic SQL: analysable only when the command string is a constant.
      const expr = analyzeConstantString(piece.sql);
      if (expr === undefined) {
        dynamic = true;
        b.opaque(`DO block runs dynamic SQL: EXECUTE ${piece.sql.trim()}`);
        // Still record what computing the string touches.
        const r = analyzeNested(`SELECT ${piece.sql}`, b.env, ex.variables);
        if (typeof r !== 'string') for (const s of r) b.absorb(s, { kinds: false, effects: true });
        continue;
      }
      sql = expr;
      asStatement = true;
      b.note('DO block EXECUTEs a constant string: analysed as SQL');
    }
    if (sql === undefined) {
      b.opaque(`DO block with an assignment Warden cannot read: ${piece.sql.trim()}`);
      continue;
    }
    const res = analyzeNested(sql, b.env, ex.variables);
    if (typeof res === 'string') {
      b.opaque(`DO block contains SQL Warden cannot parse (${res}): ${sql.trim()}`);
      continue;
    }
    for (const s of res) b.absorb(s, { kinds: asStatement, effects: true });
  }
  if (!dynamic) b.note('DO block of static SQL: analysed as that SQL');
}

/** The statement analyser for SQL inside code (function bodies, rule actions): texts or parsed statements. */
function nestedAnalyzer(env: Env): NestedAnalyzer {
  return (sql, variables) => {
    if (typeof sql === 'string') return analyzeNested(sql, env, variables);
    if (env.depth >= MAX_DEPTH) return 'nested too deeply to analyse';
    env.depth++;
    try {
      const nb = new Builder(env);
      if (variables) nb.variables = variables;
      analyzeNode(sql, nb, '');
      return [nb.finish(0, '')];
    } finally {
      env.depth--;
    }
  };
}

/** One statement (kind `do`) holding what a body does; settings it changes stay inside it. */
function bodyStatement(parts: BodyAnalysis, env: Env, fill?: (body: Builder) => void): StatementAnalysis {
  const saved = env.searchPath;
  const body = new Builder(env);
  body.kind = 'do';
  try {
    for (const p of parts.parts) body.absorb(p.sa, { kinds: p.asStatement, effects: true });
    fill?.(body);
  } finally {
    env.searchPath = saved;
  }
  for (const r of parts.opaque) body.opaque(r);
  for (const n of parts.notes) body.note(n);
  body.searchPath = undefined;
  return body.finish(0, '');
}

/** CREATE FUNCTION / PROCEDURE: the statement carries what its body does. */
function defineRoutine(n: Obj, b: Builder, text: string): void {
  const src = routineSource(n);
  const saved = b.env.searchPath;
  let parts: BodyAnalysis;
  try {
    parts = analyzeRoutineBody(src, text, nestedAnalyzer(b.env));
  } finally {
    b.env.searchPath = saved;
  }
  const body = bodyStatement(parts, b.env);
  b.body = body;
  b.defines = src.name;
  b.absorb(body, { kinds: false, effects: true });
  b.searchPath = undefined;
  b.note(`${src.kind} ${src.name}(): classified by what its body does when called`);
}

/** CREATE RULE: the statement carries what the rule's actions do. */
function defineRule(n: Obj, b: Builder, text: string): void {
  const r = b.rangeVar(n['relation']);
  if (r) b.addWrite(r);
  const name = typeof n['rulename'] === 'string' ? n['rulename'] : '?';
  const body = bodyStatement({ parts: [], opaque: [], notes: [] }, b.env, (body) => {
    for (const act of arr(n['actions'])) {
      const inner = new Builder(b.env);
      analyzeNode(obj(act) ?? {}, inner, text);
      body.absorb(inner.finish(0, text), { kinds: true, effects: true });
    }
    walkExpr(n['whereClause'], 'predicate', null, body);
  });
  b.body = body;
  b.absorb(body, { kinds: false, effects: true });
  b.searchPath = undefined;
  b.note(`rule ${name}: classified by what its actions do when they fire`);
}

/** For a dynamic EXECUTE: the command string when the expression is a constant. */
function analyzeConstantString(expr: string): string | undefined {
  const parsed = parseStatements(`SELECT ${expr}`);
  if (!parsed.ok || parsed.statements.length !== 1) return undefined;
  const sel = unwrapAs(parsed.statements[0]!.stmt, 'SelectStmt');
  const targets = arr(sel?.['targetList']);
  if (!sel || targets.length !== 1 || sel['fromClause']) return undefined;
  const v = constValue(unwrapAs(targets[0], 'ResTarget')?.['val']);
  return typeof v === 'string' ? v : undefined;
}

/** Classifies one statement node into `b`. */
function analyzeNode(stmt: Obj, b: Builder, text: string): void {
  const u = unwrap(stmt);
  if (!u) {
    b.kind = 'other';
    b.opaque('unrecognised parse tree');
    return;
  }
  const [type, n] = u;
  switch (type) {
    case 'SelectStmt':
      b.kind = 'select';
      visitSelect(n, null, b);
      return;
    case 'InsertStmt':
      b.kind = 'insert';
      visitInsert(n, null, b);
      return;
    case 'UpdateStmt':
      b.kind = 'update';
      visitUpdate(n, null, b);
      return;
    case 'DeleteStmt':
      b.kind = 'delete';
      visitDelete(n, null, b);
      return;
    case 'MergeStmt':
      b.kind = 'merge';
      visitMerge(n, null, b);
      return;
    case 'CopyStmt': {
      b.kind = 'copy';
      const from = n['is_from'] === true;
      const r = b.rangeVar(n['relation']);
      if (r) {
        if (from) b.addWrite(r);
        else b.addRead(r);
        const cols = strings(n['attlist']);
        if (cols.length === 0) b.addColumn('*', from ? 'assignment' : 'projection', [r], r.name);
        for (const c of cols) b.addColumn(c, from ? 'assignment' : 'projection', [r], r.name);
        if (n['whereClause']) {
          const scope = new Scope(null);
          scope.items.push({ refname: r.table, rel: r, sources: [r] });
          walkExpr(n['whereClause'], 'predicate', scope, b);
        }
      }
      if (n['query']) visitQuery(n['query'], null, b);
      if (from) b.classes.add('write');
      if (n['is_program']) b.opaque(`COPY ${from ? 'FROM' : 'TO'} PROGRAM runs a shell command on the database server`);
      else if (typeof n['filename'] === 'string') b.opaque(`COPY ${from ? 'FROM' : 'TO'} a file on the database server`);
      return;
    }
    case 'ExplainStmt': {
      b.kind = 'explain';
      const analyze = explainAnalyzes(n['options']);
      const savedPath = b.env.searchPath;
      const inner = new Builder(b.env);
      analyzeNode(obj(n['query']) ?? {}, inner, text);
      const sa = inner.finish(0, text);
      // A plain EXPLAIN runs nothing: a set_config() inside it changes no setting.
      if (!analyze) b.env.searchPath = savedPath;
      if (analyze) {
        b.absorb(sa, { kinds: true, effects: true });
        b.note('EXPLAIN ANALYZE runs the statement: classified by its effect');
      } else {
        b.absorb(sa, { kinds: false, effects: false, asReads: true });
        b.note('EXPLAIN without ANALYZE does not run the statement');
      }
      return;
    }
    case 'PrepareStmt': {
      const name = typeof n['name'] === 'string' ? n['name'] : '';
      // PREPARE runs nothing: a set_config('search_path') inside takes effect at EXECUTE.
      const savedPath = b.env.searchPath;
      const inner = new Builder(b.env);
      analyzeNode(obj(n['query']) ?? {}, inner, text);
      const sa = inner.finish(0, text);
      b.kind = sa.kind;
      b.absorb(sa, { kinds: true, effects: true });
      b.env.searchPath = savedPath;
      b.searchPath = undefined;
      b.prepare = { name, statement: sa };
      if (b.env.prepared.has(name)) b.note(`prepared statement "${name}" already exists: PREPARE will fail`);
      else b.env.prepared.set(name, analysisOfStatement(sa, text));
      b.note('PREPARE is classified as the statement it prepares');
      return;
    }
    case 'ExecuteStmt': {
      const name = typeof n['name'] === 'string' ? n['name'] : '';
      b.env.usesPrepared = true;
      const entry = b.env.prepared.get(name);
      if (entry && entry.ok && entry.statements.length > 0) {
        b.kind = entry.statements[0]!.kind;
        for (const s of entry.statements) b.absorb(reresolveStatement(s, b.env), { kinds: true, effects: true });
        b.execute = { name, found: true };
        b.note(`EXECUTE is classified as prepared statement "${name}"`);
      } else {
        b.kind = 'other';
        b.execute = { name, found: false };
        b.opaque(`EXECUTE of prepared statement "${name}" that Warden has not seen`);
      }
      walkExpr(n['params'], 'projection', null, b);
      return;
    }
    case 'DeallocateStmt': {
      b.kind = 'other';
      b.effect = true;
      const name = n['isall'] ? null : typeof n['name'] === 'string' ? n['name'] : null;
      b.deallocate = { name };
      if (name === null) b.env.prepared.clear();
      else b.env.prepared.delete(name);
      return;
    }
    case 'DoStmt':
      b.kind = 'do';
      analyzeDo(n, b);
      return;
    case 'CallStmt': {
      b.kind = 'call';
      const fc = obj(n['funccall']);
      const fname = fc ? strings(fc['funcname']).join('.') : '?';
      b.opaque(`CALL ${fname}(): a procedure's body is not visible`);
      if (fc) recordFuncCall(fc, null, b);
      return;
    }
    case 'VariableSetStmt':
      b.kind = 'set';
      recordSet(n, 'session', b);
      return;
    case 'VariableShowStmt':
      b.kind = 'other';
      return;
    case 'TransactionStmt':
      b.kind = 'transaction';
      return;
    case 'DeclareCursorStmt': {
      const inner = new Builder(b.env);
      analyzeNode(obj(n['query']) ?? {}, inner, text);
      const sa = inner.finish(0, text);
      b.kind = sa.kind;
      b.absorb(sa, { kinds: true, effects: true });
      return;
    }
    case 'FetchStmt':
    case 'ClosePortalStmt':
    case 'ListenStmt':
    case 'UnlistenStmt':
      b.kind = 'other';
      return;
    case 'NotifyStmt':
      b.kind = 'other';
      b.classes.add('write');
      b.note('NOTIFY sends a message to other sessions: counted as a write');
      return;
    case 'AlterSystemStmt': {
      b.kind = 'alter';
      b.alterSystem = true;
      const s = obj(n['setstmt']);
      if (s) recordSet(s, 'alter-system', b);
      return;
    }
    case 'AlterRoleSetStmt':
    case 'AlterDatabaseSetStmt': {
      b.kind = 'alter';
      const s = obj(n['setstmt']);
      if (s) recordSet(s, type === 'AlterRoleSetStmt' ? 'alter-role' : 'alter-database', b);
      return;
    }
    case 'DiscardStmt': {
      b.kind = 'other';
      b.effect = true;
      if (n['target'] === 'DISCARD_ALL') {
        // DISCARD ALL = SET SESSION AUTHORIZATION DEFAULT; RESET ALL; DEALLOCATE ALL; ...
        b.classes.add('set');
        b.resetAll = true;
        b.roleChange = true;
        b.sets.push({ name: '*', value: null, local: false, via: 'discard-all' });
        b.deallocate = { name: null };
        b.env.prepared.clear();
        const after = b.env.defaultSearchPath ?? null;
        b.searchPath = after;
        b.env.searchPath = after;
      }
      return;
    }
    case 'LoadStmt':
      b.kind = 'other';
      b.opaque('LOAD loads a shared library into the server');
      return;
    case 'LockStmt':
      // PostgreSQL asks UPDATE/DELETE/TRUNCATE privilege for every mode above ACCESS SHARE;
      // Warden counts every mode as a write (fail-closed): it blocks other sessions.
      b.kind = 'other';
      b.classes.add('lock');
      b.classes.add('write');
      walkDdl(n['relations'], b);
      return;
    case 'CheckPointStmt':
    case 'VacuumStmt':
    case 'ClusterStmt':
    case 'ReindexStmt':
    case 'RefreshMatViewStmt':
      b.kind = 'other';
      b.classes.add('maintenance');
      b.classes.add('write');
      maintenanceTargets(type, n, b);
      return;
    case 'ConstraintsSetStmt':
      b.kind = 'set';
      return;
    case 'CommentStmt':
    case 'SecLabelStmt':
      b.kind = 'other';
      b.classes.add('ddl');
      if (type === 'CommentStmt') b.classes.add('comment');
      objectTarget(n['objtype'], n['object'], b);
      return;
    case 'TruncateStmt':
      b.kind = 'truncate';
      b.classes.add('write');
      walkDdl(n['relations'], b);
      return;
    case 'GrantStmt':
    case 'GrantRoleStmt': {
      b.kind = n['is_grant'] ? 'grant' : 'revoke';
      if (type === 'GrantStmt') {
        if (n['targtype'] === 'ACL_TARGET_ALL_IN_SCHEMA') {
          for (const s of strings(n['objects'])) b.addWrite(schemaWide(s));
        } else if (n['objtype'] === 'OBJECT_TABLE' || n['objtype'] === 'OBJECT_SEQUENCE') {
          walkDdl(n['objects'], b);
        }
      }
      return;
    }
    case 'AlterDefaultPrivilegesStmt': {
      b.kind = 'alter';
      b.classes.add(obj(n['action'])?.['is_grant'] ? 'grant' : 'revoke');
      // Relations created later in the schemas named (IN SCHEMA), else anywhere.
      const schemas = arr(n['options']).flatMap((o) => {
        const d = unwrapAs(o, 'DefElem');
        return d?.['defname'] === 'schemas' ? nameParts(d['arg']) : [];
      });
      if (schemas.length) for (const s of schemas) b.addWrite(schemaWide(s));
      else b.addWrite(EVERY_RELATION);
      return;
    }
    case 'DropOwnedStmt':
    case 'ReassignOwnedStmt':
    case 'AlterTableMoveAllStmt':
      // Every object a role owns / every table of a tablespace: any relation.
      b.kind = KIND_BY_TYPE[type]!;
      b.addWrite(EVERY_RELATION);
      return;
    case 'CreateTableAsStmt': {
      b.kind = 'create';
      if (n['objtype'] === 'OBJECT_MATVIEW') b.classes.add('code');
      const into = obj(n['into']);
      const r = into ? b.rangeVar(into['rel']) : undefined;
      if (r) b.addWrite(r);
      b.classes.add('write');
      visitQuery(n['query'], null, b);
      return;
    }
    case 'ViewStmt': {
      b.kind = 'create';
      b.classes.add('code');
      const r = b.rangeVar(n['view']);
      if (r) b.addWrite(r);
      b.definition++;
      try {
        visitQuery(n['query'], null, b);
      } finally {
        b.definition--;
      }
      return;
    }
    case 'CreateSchemaStmt': {
      b.kind = 'create';
      const schema = typeof n['schemaname'] === 'string' ? n['schemaname'] : undefined;
      if (schema) b.addWrite(schemaWide(schema));
      // Elements are created in the new schema.
      const saved = b.env.searchPath;
      if (schema) b.env.searchPath = [schema];
      try {
        for (const e of arr(n['schemaElts'])) {
          const inner = new Builder(b.env);
          analyzeNode(obj(e) ?? {}, inner, text);
          b.absorb(inner.finish(0, text), { kinds: true, effects: true });
        }
      } finally {
        b.env.searchPath = saved;
      }
      return;
    }
    case 'CreateStmt': {
      b.kind = 'create';
      const rv = unwrapAs(n['relation'], 'RangeVar');
      if (rv && typeof rv['relname'] === 'string' && typeof rv['schemaname'] !== 'string' && rv['relpersistence'] !== 't') {
        // The first existing schema of the path gets it: every one of them is a candidate.
        const cands = creationCandidates(b.env.searchPath, b.env.user);
        b.addWrite(
          cands && cands.length > 0
            ? { ...qualifiedRelation(cands[0]!, rv['relname']), qualified: false, candidates: cands }
            : resolveUnqualified(rv['relname'], b.env.searchPath, b.env.user),
        );
        const rest: Obj = { ...n };
        delete rest['relation'];
        walkDdl(rest, b);
      } else walkDdl(n, b);
      return;
    }
    case 'CreateFunctionStmt':
      b.kind = 'create';
      b.classes.add('code');
      defineRoutine(n, b, text);
      return;
    case 'RuleStmt':
      b.kind = 'create';
      b.classes.add('code');
      defineRule(n, b, text);
      return;
    case 'CreateTrigStmt':
    case 'CreateEventTrigStmt': {
      // The trigger runs its function: recorded as a call, so the function's body is
      // looked up and judged with this statement (governance/code-catalog.ts).
      b.kind = 'create';
      b.classes.add('code');
      walkDdl(n, b);
      const fname = strings(n['funcname']).join('.');
      if (fname) {
        b.functions.add(fname);
        b.note(`the trigger runs ${fname}(): judged by what that function does`);
      }
      return;
    }
    case 'CreatePolicyStmt':
      b.kind = 'create';
      b.classes.add('code');
      walkDdl(n, b);
      return;
    case 'AlterTableStmt': {
      b.kind = 'alter';
      walkDdl(n, b);
      // Columns the ALTER changes (so `columns` rules can protect them).
      const r = b.rangeVar(n['relation']);
      if (r) {
        for (const c of arr(n['cmds'])) {
          const cmd = unwrapAs(c, 'AlterTableCmd');
          if (!cmd) continue;
          const subtype = String(cmd['subtype'] ?? '');
          if (typeof cmd['name'] === 'string' && subtype.includes('Column')) b.addColumn(cmd['name'], 'assignment', [r], r.name);
          const def = unwrapAs(cmd['def'], 'ColumnDef');
          if (def && typeof def['colname'] === 'string') b.addColumn(def['colname'], 'assignment', [r], r.name);
        }
      }
      return;
    }
    case 'DropStmt': {
      b.kind = 'drop';
      for (const o of arr(n['objects'])) objectTarget(n['removeType'], o, b);
      return;
    }
    case 'RenameStmt': {
      b.kind = 'alter';
      const rt = n['renameType'];
      if (rt === 'OBJECT_SCHEMA' && typeof n['subname'] === 'string') {
        b.addWrite(schemaWide(n['subname']));
        if (typeof n['newname'] === 'string') b.addWrite(schemaWide(n['newname']));
      } else {
        const r = b.rangeVar(n['relation']);
        if (r) b.addWrite(r);
        if (r && rt === 'OBJECT_COLUMN' && typeof n['subname'] === 'string') b.addColumn(n['subname'], 'assignment', [r], r.name);
        if (!r) objectTarget(rt, n['object'], b);
      }
      return;
    }
    case 'AlterObjectSchemaStmt': {
      b.kind = 'alter';
      const r = b.rangeVar(n['relation']);
      if (r) {
        b.addWrite(r);
        if (typeof n['newschema'] === 'string') b.addWrite(qualifiedRelation(n['newschema'], r.table));
      }
      return;
    }
    case 'ImportForeignSchemaStmt': {
      b.kind = 'create';
      if (typeof n['local_schema'] === 'string') b.addWrite(schemaWide(n['local_schema']));
      return;
    }
    case 'CreateSubscriptionStmt':
    case 'AlterSubscriptionStmt':
      b.kind = KIND_BY_TYPE[type]!;
      b.opaque('a subscription copies data in from another server');
      return;
    default: {
      const kind = KIND_BY_TYPE[type];
      if (kind) {
        b.kind = kind;
        walkDdl(n, b);
        return;
      }
      b.kind = 'other';
      b.opaque(`statement type ${type} is not classified by Warden`);
    }
  }
}

// ---------------------------------------------------------------------------
// Entry point

function aggregate(sql: string, statements: StatementAnalysis[], usesPrepared: boolean): AnalysisOk {
  const classes = new Set<StatementClass>();
  const reads = new Map<string, RelationRef>();
  const writes = new Map<string, RelationRef>();
  const functions = new Set<string>();
  for (const s of statements) {
    for (const c of s.classes) classes.add(c);
    for (const r of s.reads) reads.set(relKey(r), r);
    for (const r of s.writes) writes.set(relKey(r), r);
    for (const f of s.functions) functions.add(f);
  }
  // `read` only when every statement is a read.
  if (statements.some((s) => !s.classes.has('read'))) classes.delete('read');
  return Object.freeze({
    ok: true as const,
    sql,
    statements: Object.freeze([...statements]),
    classes,
    opaque: statements.some((s) => s.opaque),
    reads: Object.freeze([...reads.values()]),
    writes: Object.freeze([...writes.values()]),
    functions: Object.freeze([...functions]),
    usesPrepared,
  });
}

/**
 * Analyses a query string.
 *
 * @param sql the query text as the client sent it (Query or Parse message)
 * @param ctx session facts: search_path, upstream user, prepared statements
 * @returns `{ ok: true, statements, ... }`, or `{ ok: false, error }` when
 *   PostgreSQL's parser rejects the text (the whole string: nothing of it runs)
 * @throws when the parser is not loaded ({@link initSqlParser})
 */
export function analyzeSql(sql: string, ctx: AnalyzeContext): Analysis {
  const parsed = parseStatements(sql);
  if (!parsed.ok) {
    const { message, position } = parsed.failure;
    return Object.freeze({
      ok: false as const,
      sql,
      error: position !== undefined ? `${message} (at character ${position})` : message,
      ...(position !== undefined ? { position } : {}),
    });
  }
  const env: Env = {
    searchPath: ctx.searchPath,
    ...(ctx.user !== undefined ? { user: ctx.user } : {}),
    ...(ctx.defaultSearchPath !== undefined ? { defaultSearchPath: ctx.defaultSearchPath } : {}),
    prepared: new PreparedOverlay(ctx.preparedStatements),
    usesPrepared: false,
    depth: 0,
  };
  let statements: StatementAnalysis[];
  try {
    statements = parsed.statements.map((raw, i) => {
      const b = new Builder(env);
      const text = sliceBytes(sql, raw.location, raw.length ? raw.location + raw.length : undefined).trim();
      analyzeNode(raw.stmt, b, text);
      return b.finish(i, text);
    });
  } catch (err) {
    // A parse tree too deep to walk (stack overflow), or an unexpected tree shape: the
    // statement is treated like an unparsable one (denied when any rule could apply).
    const message = err instanceof Error ? err.message : String(err);
    const error =
      err instanceof RangeError
        ? `statement too complex for Warden to analyse (${message})`
        : `Warden could not analyse the statement (${message})`;
    return Object.freeze({ ok: false as const, sql, error });
  }
  return aggregate(sql, statements, env.usesPrepared);
}

/**
 * The session's prepared statements after a query string ran.
 *
 * @param prev the map before
 * @param analysis the analysed string
 * @param succeeded whether the whole string completed without error. When it
 *   failed, every name it PREPAREs or DEALLOCATEs becomes unknown (EXECUTE of it is
 *   then opaque) since Warden cannot tell which statements ran; prepared
 *   statements are not transactional in PostgreSQL.
 */
export function preparedStatementsAfter(
  prev: ReadonlyMap<string, Analysis>,
  analysis: Analysis,
  succeeded: boolean,
): Map<string, Analysis> {
  const next = new Map(prev);
  if (!analysis.ok) return next;
  for (const s of analysis.statements) {
    if (s.prepare) {
      if (succeeded) {
        if (!next.has(s.prepare.name)) next.set(s.prepare.name, analysisOfStatement(s.prepare.statement));
      } else next.delete(s.prepare.name);
    }
    if (s.deallocate) {
      if (s.deallocate.name === null) {
        if (succeeded) next.clear();
      } else next.delete(s.deallocate.name);
    }
  }
  return next;
}
