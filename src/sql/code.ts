/**
 * Code that runs later or elsewhere: function and procedure bodies, rule
 * actions, and what a statement does through the code it calls.
 *
 * Pure, like the rest of `sql/`. Two halves:
 *
 * - {@link routineSource} and {@link analyzeRoutineBody} read a
 *   `CREATE FUNCTION | PROCEDURE` parse node and analyse its body with the
 *   statement analyser (handed in as a {@link NestedAnalyzer}): SQL bodies
 *   (`AS '...'`, `BEGIN ATOMIC`, `RETURN expr`) and PL/pgSQL bodies (every SQL
 *   statement and expression, constant `EXECUTE` strings). Dynamic SQL and other
 *   languages are opaque.
 * - {@link withCodeEffects} adds the effects of called code (a function's body,
 *   a trigger's function, a rule's actions) to a statement's analysis, with a
 *   note saying where each effect comes from ("writes pay.ledger via
 *   pay.refund()"). The catalog lookups that find the code are in
 *   governance/code-catalog.ts.
 *
 * @module
 */
import { extractPlpgsqlFunction, type PlpgsqlPiece } from './plpgsql.js';
import { parseStatements, scanTokens, sliceBytes, type ParseNode } from './parser.js';
import type { Analysis, AnalysisOk, CodeRun, ColumnRef, RelationRef, SettingChange, StatementAnalysis, StatementClass } from './types.js';

/** Languages whose bodies Warden reads. */
export const READABLE_LANGUAGES: ReadonlySet<string> = new Set(['sql', 'plpgsql']);

/** Analyses SQL found inside code (a text, or an already parsed statement node) as statements of their own; a string is an error. */
export type NestedAnalyzer = (sql: string | ParseNode, variables?: ReadonlySet<string>) => readonly StatementAnalysis[] | string;

/** What a `CREATE FUNCTION | PROCEDURE` defines. */
export interface RoutineSource {
  /** The name as written (`pay.refund`, `refund`). */
  readonly name: string;
  readonly kind: 'function' | 'procedure';
  /** Lower-cased language name (`sql` when none is given and the body is SQL-standard). */
  readonly language: string;
  /** The body text of `AS '...'` (the first item; C functions have two). */
  readonly body?: string;
  /** Statements of a SQL-standard body (`BEGIN ATOMIC ... END`, `RETURN expr`). */
  readonly sqlBody?: readonly ParseNode[];
  /** Parameter names (references to them in a SQL body are not columns). */
  readonly params: ReadonlySet<string>;
}

/** One analysed piece of a body. */
export interface BodyPart {
  readonly sa: StatementAnalysis;
  /** A statement of its own (its kind counts), not an expression computed by the code. */
  readonly asStatement: boolean;
}

/** The analysis of a routine body (merged by the caller into one statement analysis). */
export interface BodyAnalysis {
  readonly parts: readonly BodyPart[];
  readonly opaque: readonly string[];
  readonly notes: readonly string[];
}

function isObj(v: unknown): v is ParseNode {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
function arr(v: unknown): unknown[] {
  return Array.isArray(v) ? v : [];
}
function strVal(v: unknown): string | undefined {
  if (!isObj(v) || !isObj(v['String'])) return undefined;
  const s = v['String']['sval'];
  return typeof s === 'string' ? s : '';
}
function listStrings(v: unknown): string[] {
  const items = isObj(v) && isObj(v['List']) ? arr(v['List']['items']) : arr(v);
  const out: string[] = [];
  for (const x of items) {
    const s = strVal(x);
    if (s !== undefined) out.push(s);
  }
  return out;
}

/** Reads the name, language and body of a `CreateFunctionStmt` node (unwrapped). */
export function routineSource(n: ParseNode): RoutineSource {
  const name = listStrings(n['funcname']).join('.');
  let language: string | undefined;
  let body: string | undefined;
  for (const o of arr(n['options'])) {
    const d = isObj(o) && isObj(o['DefElem']) ? o['DefElem'] : undefined;
    if (!d) continue;
    if (d['defname'] === 'language') language = (strVal(d['arg']) ?? '').toLowerCase();
    if (d['defname'] === 'as') body = listStrings(d['arg'])[0] ?? strVal(d['arg']);
  }
  const sqlBody: ParseNode[] = [];
  const collect = (v: unknown): void => {
    if (Array.isArray(v)) {
      for (const x of v) collect(x);
      return;
    }
    if (!isObj(v)) return;
    if (isObj(v['List'])) {
      collect(v['List']['items']);
      return;
    }
    if (isObj(v['ReturnStmt'])) {
      // RETURN expr: evaluated like SELECT expr.
      sqlBody.push({ SelectStmt: { targetList: [{ ResTarget: { val: v['ReturnStmt']['returnval'] } }], op: 'SETOP_NONE', limitOption: 'LIMIT_OPTION_DEFAULT' } });
      return;
    }
    sqlBody.push(v);
  };
  const params = new Set<string>();
  for (const p of arr(n['parameters'])) {
    const fp = isObj(p) && isObj(p['FunctionParameter']) ? p['FunctionParameter'] : undefined;
    if (fp && typeof fp['name'] === 'string') params.add(fp['name']);
  }
  const hasSqlBody = n['sql_body'] !== undefined && n['sql_body'] !== null;
  if (hasSqlBody) collect(n['sql_body']);
  return {
    name,
    kind: n['is_procedure'] ? 'procedure' : 'function',
    language: language ?? 'sql',
    params,
    ...(body !== undefined ? { body } : {}),
    ...(hasSqlBody ? { sqlBody } : {}),
  };
}

// ---------------------------------------------------------------------------
// Body analysis

function constValue(node: unknown): string | null | undefined {
  if (!isObj(node)) return undefined;
  if (isObj(node['TypeCast'])) return constValue(node['TypeCast']['arg']);
  const c = node['A_Const'];
  if (isObj(c)) {
    if (c['isnull']) return null;
    if (isObj(c['sval'])) return typeof c['sval']['sval'] === 'string' ? c['sval']['sval'] : '';
    return undefined;
  }
  const e = node['A_Expr'];
  if (isObj(e) && e['kind'] === 'AEXPR_OP' && listStrings(e['name']).join('.') === '||') {
    const l = constValue(e['lexpr']);
    const r = constValue(e['rexpr']);
    return typeof l === 'string' && typeof r === 'string' ? l + r : undefined;
  }
  return undefined;
}

/** The command string of a dynamic EXECUTE when its expression is a constant. */
function constantCommand(expr: string): string | undefined {
  const parsed = parseStatements(`SELECT ${expr}`);
  if (!parsed.ok || parsed.statements.length !== 1) return undefined;
  const sel = parsed.statements[0]!.stmt['SelectStmt'];
  if (!isObj(sel) || sel['fromClause']) return undefined;
  const targets = arr(sel['targetList']);
  if (targets.length !== 1) return undefined;
  const rt = isObj(targets[0]) ? targets[0]['ResTarget'] : undefined;
  const v = isObj(rt) ? constValue(rt['val']) : undefined;
  return typeof v === 'string' ? v : undefined;
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

/**
 * Analyses the SQL pieces of a PL/pgSQL body. `what` names the code in reasons
 * (`function pay.refund()`).
 */
export function analyzePlpgsqlPieces(
  pieces: readonly PlpgsqlPiece[],
  variables: ReadonlySet<string>,
  nested: NestedAnalyzer,
  what: string,
): BodyAnalysis {
  const parts: BodyPart[] = [];
  const opaque: string[] = [];
  const notes: string[] = [];
  for (const piece of pieces) {
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
      const cmd = constantCommand(piece.sql);
      if (cmd === undefined) {
        opaque.push(`${what} runs dynamic SQL: EXECUTE ${piece.sql.trim()}`);
        const r = nested(`SELECT ${piece.sql}`, variables);
        if (typeof r !== 'string') for (const sa of r) parts.push({ sa, asStatement: false });
        continue;
      }
      sql = cmd;
      asStatement = true;
      notes.push(`${what} EXECUTEs a constant string: analysed as SQL`);
    }
    if (sql === undefined) {
      opaque.push(`${what} has an assignment Warden cannot read: ${piece.sql.trim()}`);
      continue;
    }
    const res = nested(sql, variables);
    if (typeof res === 'string') {
      opaque.push(`${what} contains SQL Warden cannot parse (${res}): ${sql.trim()}`);
      continue;
    }
    for (const sa of res) parts.push({ sa, asStatement });
  }
  return { parts, opaque, notes };
}

/**
 * Analyses what a routine's body does when it runs.
 *
 * @param src from {@link routineSource}
 * @param createText the whole `CREATE FUNCTION` text (PL/pgSQL is parsed from it, with its signature)
 * @param nested the statement analyser for the SQL inside
 */
export function analyzeRoutineBody(src: RoutineSource, createText: string, nested: NestedAnalyzer): BodyAnalysis {
  const what = `${src.kind} ${src.name}()`;
  if (src.sqlBody) {
    const parts: BodyPart[] = [];
    const opaque: string[] = [];
    for (const node of src.sqlBody) {
      const r = nested(node, src.params);
      if (typeof r === 'string') opaque.push(`${what}: ${r}`);
      else for (const sa of r) parts.push({ sa, asStatement: true });
    }
    return { parts, opaque, notes: [] };
  }
  if (src.language === 'sql') {
    const r = nested(src.body ?? '', src.params);
    if (typeof r === 'string') return { parts: [], opaque: [`${what} has a SQL body Warden cannot parse (${r})`], notes: [] };
    return { parts: r.map((sa) => ({ sa, asStatement: true })), opaque: [], notes: [] };
  }
  if (src.language === 'plpgsql') {
    const ex = extractPlpgsqlFunction(createText);
    if (!ex.ok) return { parts: [], opaque: [`${what} has a PL/pgSQL body Warden cannot parse (${ex.error})`], notes: [] };
    return analyzePlpgsqlPieces(ex.pieces, ex.variables, nested, what);
  }
  return { parts: [], opaque: [`${what} is written in LANGUAGE ${src.language}, which Warden cannot read`], notes: [] };
}

// ---------------------------------------------------------------------------
// Adding the effects of called code to a statement

/** The effect of one piece of code a statement runs. */
export interface CodeEffect {
  /** How the statement reaches it: `pay.refund()`, `trigger t_audit on public.orders`, `rule r on public.orders`. */
  readonly via: string;
  /** What the code does (absent when it cannot be seen: then `opaque` says why). */
  readonly body?: StatementAnalysis;
  /** Why Warden cannot see what the code does. */
  readonly opaque?: string;
  /** A note to show instead of (or besides) the effect summary (e.g. trusted by the configuration). */
  readonly note?: string;
}

function relKey(r: RelationRef): string {
  return `${r.schema}\u0000${r.table}\u0000${r.candidates.join('\u0001')}`;
}

function colKey(c: ColumnRef): string {
  return `${c.usage}\u0000${c.clause}\u0000${c.column}\u0000${c.relation ?? ''}\u0000${c.from.map(relKey).sort().join('\u0002')}`;
}

/** Classes that describe how a body ran rather than what it did. */
const NOT_CARRIED = new Set<StatementClass>(['read', 'do']);

/** The classes an effect adds ("write", "insert", ...), for notes. */
function effectSummary(e: CodeEffect): string[] {
  const out: string[] = [];
  const b = e.body;
  if (!b) return out;
  const names = (rs: readonly RelationRef[]) => rs.map((r) => r.name).join(', ');
  if (b.writes.length) out.push(`writes ${names(b.writes)} via ${e.via}`);
  if (b.reads.length) out.push(`reads ${names(b.reads)} via ${e.via}`);
  const cls = [...b.classes].filter((c) => !NOT_CARRIED.has(c) && c !== 'select' && c !== 'write' && c !== 'insert' && c !== 'update' && c !== 'delete');
  if (cls.length) out.push(`${cls.sort().join(', ')} via ${e.via}`);
  if (!out.length) out.push(`${e.via} changes nothing Warden can see`);
  return out;
}

/**
 * A statement analysis with the effects of the code it runs added.
 *
 * @param lift opaque reasons that no longer hold now that the code was read
 *   (`CALL p(): a procedure's body is not visible`)
 */
export function statementWithCodeEffects(sa: StatementAnalysis, effects: readonly CodeEffect[], lift: readonly string[] = []): StatementAnalysis {
  if (effects.length === 0 && !sa.opaqueReasons.some((r) => lift.includes(r))) return sa;
  const classes = new Set<StatementClass>(sa.classes);
  const reads = new Map(sa.reads.map((r) => [relKey(r), r] as const));
  const writes = new Map(sa.writes.map((r) => [relKey(r), r] as const));
  const columns = new Map(sa.columns.map((c) => [colKey(c), c] as const));
  const functions = new Set(sa.functions);
  const sets: SettingChange[] = [...sa.sets];
  const opaqueReasons = sa.opaqueReasons.filter((r) => !lift.includes(r));
  if (opaqueReasons.length === 0) classes.delete('opaque');
  const notes = [...sa.notes];
  let { roleChange, resetAll, alterSystem } = sa;
  let changes = false;
  const code: CodeRun[] = [...(sa.code ?? [])];
  for (const e of effects) {
    if (e.note && !notes.includes(e.note)) notes.push(e.note);
    if (e.opaque !== undefined) {
      if (!opaqueReasons.includes(e.opaque)) opaqueReasons.push(e.opaque);
      continue;
    }
    const b = e.body;
    if (!b) continue;
    for (const n of effectSummary(e)) if (!notes.includes(n)) notes.push(n);
    code.push({ via: e.via, body: b }, ...(b.code ?? []));
    for (const c of b.classes) {
      if (NOT_CARRIED.has(c)) continue;
      classes.add(c);
    }
    if (!b.classes.has('read')) changes = true;
    for (const r of b.reads) reads.set(relKey(r), r);
    for (const r of b.writes) writes.set(relKey(r), r);
    for (const c of b.columns) columns.set(colKey(c), c);
    for (const f of b.functions) functions.add(f);
    sets.push(...b.sets);
    roleChange ||= b.roleChange;
    resetAll ||= b.resetAll;
    alterSystem ||= b.alterSystem;
    for (const r of b.opaqueReasons) if (!opaqueReasons.includes(r)) opaqueReasons.push(r);
    for (const n of b.notes) if (!notes.includes(n)) notes.push(n);
  }
  const opaque = opaqueReasons.length > 0;
  if (opaque) classes.add('opaque');
  if (changes || opaque) classes.delete('read');
  return Object.freeze({
    ...sa,
    classes,
    opaque,
    opaqueReasons: Object.freeze(opaqueReasons),
    reads: Object.freeze([...reads.values()]),
    writes: Object.freeze([...writes.values()]),
    columns: Object.freeze([...columns.values()]),
    functions: Object.freeze([...functions]),
    sets: Object.freeze(sets),
    roleChange,
    resetAll,
    alterSystem,
    notes: Object.freeze(notes),
    ...(code.length > 0 ? { code: Object.freeze(code) } : {}),
  });
}

/**
 * An analysis with the effects of code added per statement (by index); the same
 * object when there is nothing to add. `lifts`: per statement, opaque reasons
 * that no longer hold (see {@link statementWithCodeEffects}).
 */
export function withCodeEffects(
  a: Analysis,
  effects: ReadonlyMap<number, readonly CodeEffect[]>,
  lifts: ReadonlyMap<number, readonly string[]> = new Map(),
): Analysis {
  if (!a.ok || (effects.size === 0 && lifts.size === 0)) return a;
  let changed = false;
  const statements = a.statements.map((s) => {
    const next = statementWithCodeEffects(s, effects.get(s.index) ?? [], lifts.get(s.index) ?? []);
    if (next !== s) changed = true;
    return next;
  });
  if (!changed) return a;
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
  if (statements.some((s) => !s.classes.has('read'))) classes.delete('read');
  const out: AnalysisOk = {
    ...a,
    statements: Object.freeze(statements),
    classes,
    opaque: statements.some((s) => s.opaque),
    reads: Object.freeze([...reads.values()]),
    writes: Object.freeze([...writes.values()]),
    functions: Object.freeze([...functions]),
  };
  return Object.freeze(out);
}
