/**
 * Queries and the expressions inside them: SELECT, INSERT, UPDATE, DELETE,
 * MERGE and COPY. Walks FROM items and CTEs into name scopes, attributes every
 * column reference to the relations it can come from (and the clause it sits
 * in), and records function calls, subqueries and their effects.
 *
 * The expression walker lives here too: expressions hold subqueries and
 * queries hold expressions, so the two recurse into each other.
 *
 * @module
 */
import { Scope, type Builder, type RangeItem, type StatementHandlers } from './builder.js';
import { functionEffect, SEQUENCE_FUNCTIONS } from './functions.js';
import { parseQualifiedName, parseSearchPath, qualifiedRelation, resolveNameParts } from './search-path.js';
import { arr, constValue, isObj, obj, strings, strVal, unwrap, unwrapAs, type Obj } from './tree.js';
import type { ColumnUsage, RelationRef } from './types.js';

// ---------------------------------------------------------------------------
// Expressions

/** Parse-node types of the statements that are queries (they can nest in expressions). */
export const QUERY_TYPES = new Set(['SelectStmt', 'InsertStmt', 'UpdateStmt', 'DeleteStmt', 'MergeStmt']);

export function walkExpr(node: unknown, usage: ColumnUsage, scope: Scope | null, b: Builder): void {
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
  const column = fields[fields.length - 1]!;
  if (b.variables && b.variables.has(fields[0]!) && !(scope && scope.findItem(fields[0]!))) {
    // A trigger function's NEW and OLD are the rows of the table the trigger is on: what it
    // reads of them is a column read (of no relation the function names), as in a rule's actions.
    if (fields[0] === 'new' || fields[0] === 'old') b.addColumn(column, usage, []);
    return;
  }
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

export function recordFuncCall(n: Obj, scope: Scope | null, b: Builder): void {
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
      else if (info.effect === 'lock') {
        // An advisory lock blocks other sessions, as LOCK TABLE does: `lock` and `write`
        // (and `other`, its class before, so no deny rule on `other` stops applying).
        b.classes.add('lock');
        b.classes.add('write');
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

export function visitQuery(node: unknown, parent: Scope | null, b: Builder): void {
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
      b.absorb(b.nested(node as Obj, ''), { kinds: true, effects: b.definition === 0 });
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
// The statements

/** COPY: rows in (a write) or out (a read) of a relation or a query; files and programs are opaque. */
function copyStatement(n: Obj, b: Builder): void {
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
}

/** Queries and COPY, by parse-node type. */
export const DML_STATEMENTS: StatementHandlers = {
  SelectStmt: (n, b) => {
    b.kind = 'select';
    visitSelect(n, null, b);
  },
  InsertStmt: (n, b) => {
    b.kind = 'insert';
    visitInsert(n, null, b);
  },
  UpdateStmt: (n, b) => {
    b.kind = 'update';
    visitUpdate(n, null, b);
  },
  DeleteStmt: (n, b) => {
    b.kind = 'delete';
    visitDelete(n, null, b);
  },
  MergeStmt: (n, b) => {
    b.kind = 'merge';
    visitMerge(n, null, b);
  },
  CopyStmt: copyStatement,
};
