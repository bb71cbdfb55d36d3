/**
 * The analyser's working state: the environment of one query string
 * ({@link Env}: search_path, prepared statements, nesting depth), the name
 * scopes of a query ({@link Scope}), and the {@link Builder} that collects one
 * statement's analysis and freezes it into a {@link StatementAnalysis}.
 *
 * @module
 */
import { qualifiedRelation, resolveUnqualified } from './search-path.js';
import { unwrapAs, type Obj } from './tree.js';
import type {
  Analysis,
  AnalysisOk,
  ColumnRef,
  ColumnUsage,
  DdlObjectKind,
  DdlTarget,
  RelationRef,
  SettingChange,
  StatementAnalysis,
  StatementClass,
  StatementKind,
} from './types.js';

/** Nesting limit for DO bodies / constant EXECUTE strings analysed recursively. */
export const MAX_DEPTH = 8;

/** Prepared statements visible while analysing: the session's plus those of earlier statements. */
export class PreparedOverlay {
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

export interface Env {
  searchPath: readonly string[] | null;
  readonly user?: string;
  readonly defaultSearchPath?: readonly string[];
  readonly prepared: PreparedOverlay;
  usesPrepared: boolean;
  /** Nesting depth of DO bodies / EXECUTEd constant strings. */
  depth: number;
  /**
   * Classifies one statement node into a builder: the dispatcher of analyze.ts,
   * handed down so the statement families can analyse nested statements
   * (EXPLAIN, PREPARE, CREATE SCHEMA elements, rule actions, ...) without
   * importing it back.
   */
  readonly analyzeNode: (stmt: Obj, b: Builder, text: string) => void;
  /** While the elements of a CREATE SCHEMA are analysed: that schema (where their unqualified objects go). */
  elementSchema?: string | undefined;
}

export interface RangeItem {
  /** Name the item is referenced by (alias or relation name); null for an unaliased join. */
  readonly refname: string | null;
  /** The base relation, for a table reference. */
  readonly rel?: RelationRef;
  /** Base relations its columns can come from. */
  readonly sources: readonly RelationRef[];
  /** `excluded`, `old`, `new`: reachable only by qualified names. */
  readonly pseudo?: boolean;
}

export class Scope {
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

export function relKey(r: RelationRef): string {
  return `${r.schema}\u0000${r.table}\u0000${r.candidates.join('\u0001')}`;
}

export class Builder {
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
  /** DDL targets besides the relations of `writes` (see StatementAnalysis.ddlTargets). */
  private readonly named: DdlTarget[] = [];
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
  /** Analyses a nested statement node in a builder of its own (same environment) and returns its analysis. */
  nested(node: Obj, text: string): StatementAnalysis {
    const inner = new Builder(this.env);
    this.env.analyzeNode(node, inner, text);
    return inner.finish(0, text);
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
  /** Records an object a DDL statement changes that `writes` does not hold; `schema` undefined = not named. */
  ddlTarget(kind: DdlObjectKind, schema: string | undefined, name: string): void {
    this.named.push(schema === undefined ? Object.freeze({ kind, name }) : Object.freeze({ kind, schema, name }));
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
      ddlTargets: (classes.has('ddl') || classes.has('drop')) && this.kind !== 'truncate' ? this.ddlTargets() : NO_TARGETS,
      ...(this.searchPath !== undefined
        ? { searchPath: this.searchPath === null ? null : Object.freeze([...this.searchPath]) }
        : {}),
    };
    return Object.freeze(sa);
  }

  /** The relations of `writes`, then the other objects recorded, without duplicates. */
  private ddlTargets(): readonly DdlTarget[] {
    const out: DdlTarget[] = [];
    const seen = new Set<string>();
    const add = (t: DdlTarget): void => {
      const key = `${t.schema ?? ''}\u0000${t.schema === undefined ? '?' : ''}\u0000${t.name}`;
      if (seen.has(key)) return;
      seen.add(key);
      out.push(t);
    };
    for (const r of this.writes.values()) {
      add(Object.freeze({ kind: r.table === '*' ? 'schema' : 'relation', schema: r.schema, name: r.table }));
    }
    for (const t of this.named) add(t);
    return Object.freeze(out);
  }
}

const NO_TARGETS: readonly DdlTarget[] = Object.freeze([]);

/** The analysis of a query string from its statements' analyses. */
export function aggregate(sql: string, statements: StatementAnalysis[], usesPrepared: boolean): AnalysisOk {
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

/** Wraps one statement analysis as a standalone Analysis (for the prepared-statement map). */
export function analysisOfStatement(sa: StatementAnalysis, sql = sa.text): AnalysisOk {
  return aggregate(sql, [sa], false);
}

/**
 * Classifies one statement of a given parse-node type into `b`: sets its kind and
 * records what it touches. `n` is the node inside `{Type: n}`; `text` the
 * statement's source text.
 */
export type StatementHandler = (n: Obj, b: Builder, text: string, type: string) => void;

/** Handlers of one family of statements, by parse-node type. */
export type StatementHandlers = Readonly<Record<string, StatementHandler>>;
