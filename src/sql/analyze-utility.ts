/**
 * Utility statements: session state (SET / RESET / SHOW, ALTER SYSTEM / ROLE /
 * DATABASE ... SET, DISCARD), prepared statements (PREPARE / EXECUTE /
 * DEALLOCATE), transactions, cursors, LISTEN / NOTIFY, LOAD, EXPLAIN, LOCK and
 * the maintenance commands (VACUUM, CLUSTER, REINDEX, REFRESH, CHECKPOINT).
 *
 * Statements analysed in order see what earlier ones of the same string did to
 * the session: the search_path and the prepared statements live in the
 * environment ({@link Env}).
 *
 * @module
 */
import { analysisOfStatement, type Builder, type Env, type StatementHandlers } from './builder.js';
import { walkExpr } from './analyze-dml.js';
import { EVERY_RELATION, schemaWide, walkDdl } from './analyze-ddl.js';
import { resolveUnqualified } from './search-path.js';
import { arr, constValue, obj, unwrap, unwrapAs, type Obj } from './tree.js';
import type { RelationRef, SettingChange, StatementAnalysis } from './types.js';

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

// ---------------------------------------------------------------------------
// The statements

/** EXPLAIN: classified by its statement's effect with ANALYZE (which runs it), else only as reads of what it names. */
function explainStatement(n: Obj, b: Builder, text: string): void {
  b.kind = 'explain';
  const analyze = explainAnalyzes(n['options']);
  const savedPath = b.env.searchPath;
  const sa = b.nested(obj(n['query']) ?? {}, text);
  // A plain EXPLAIN runs nothing: a set_config() inside it changes no setting.
  if (!analyze) b.env.searchPath = savedPath;
  if (analyze) {
    b.absorb(sa, { kinds: true, effects: true });
    b.note('EXPLAIN ANALYZE runs the statement: classified by its effect');
  } else {
    b.absorb(sa, { kinds: false, effects: false, asReads: true });
    b.note('EXPLAIN without ANALYZE does not run the statement');
  }
}

/** PREPARE: classified as the statement it prepares, which later statements of the string can EXECUTE. */
function prepareStatement(n: Obj, b: Builder, text: string): void {
  const name = typeof n['name'] === 'string' ? n['name'] : '';
  // PREPARE runs nothing: a set_config('search_path') inside takes effect at EXECUTE.
  const savedPath = b.env.searchPath;
  const sa = b.nested(obj(n['query']) ?? {}, text);
  b.kind = sa.kind;
  b.absorb(sa, { kinds: true, effects: true });
  b.env.searchPath = savedPath;
  b.searchPath = undefined;
  b.prepare = { name, statement: sa };
  if (b.env.prepared.has(name)) b.note(`prepared statement "${name}" already exists: PREPARE will fail`);
  else b.env.prepared.set(name, analysisOfStatement(sa, text));
  b.note('PREPARE is classified as the statement it prepares');
}

/** EXECUTE: classified as the prepared statement (re-resolved with the current search_path); opaque when unknown. */
function executeStatement(n: Obj, b: Builder): void {
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
}

function deallocateStatement(n: Obj, b: Builder): void {
  b.kind = 'other';
  b.effect = true;
  const name = n['isall'] ? null : typeof n['name'] === 'string' ? n['name'] : null;
  b.deallocate = { name };
  if (name === null) b.env.prepared.clear();
  else b.env.prepared.delete(name);
}

/** DISCARD ALL = SET SESSION AUTHORIZATION DEFAULT; RESET ALL; DEALLOCATE ALL; ... */
function discardStatement(n: Obj, b: Builder): void {
  b.kind = 'other';
  b.effect = true;
  if (n['target'] !== 'DISCARD_ALL') return;
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

/** DECLARE CURSOR: classified as its query. */
function declareCursor(n: Obj, b: Builder, text: string): void {
  const sa = b.nested(obj(n['query']) ?? {}, text);
  b.kind = sa.kind;
  b.absorb(sa, { kinds: true, effects: true });
}

function otherKind(_n: Obj, b: Builder): void {
  b.kind = 'other';
}

/**
 * LOCK TABLE: PostgreSQL asks UPDATE/DELETE/TRUNCATE privilege for every mode
 * above ACCESS SHARE; Warden counts every mode as a write (fail-closed): it
 * blocks other sessions.
 */
function lockStatement(n: Obj, b: Builder): void {
  b.kind = 'other';
  b.classes.add('lock');
  b.classes.add('write');
  walkDdl(n['relations'], b);
}

/** VACUUM, CLUSTER, REINDEX, REFRESH MATERIALIZED VIEW, CHECKPOINT: maintenance that rewrites relations. */
function maintenanceStatement(n: Obj, b: Builder, _text: string, type: string): void {
  b.kind = 'other';
  b.classes.add('maintenance');
  b.classes.add('write');
  maintenanceTargets(type, n, b);
}

function alterRoleOrDatabaseSet(n: Obj, b: Builder, _text: string, type: string): void {
  b.kind = 'alter';
  const s = obj(n['setstmt']);
  if (s) recordSet(s, type === 'AlterRoleSetStmt' ? 'alter-role' : 'alter-database', b);
}

/** Utility statements, by parse-node type. */
export const UTILITY_STATEMENTS: StatementHandlers = {
  ExplainStmt: explainStatement,
  PrepareStmt: prepareStatement,
  ExecuteStmt: executeStatement,
  DeallocateStmt: deallocateStatement,
  VariableSetStmt: (n, b) => {
    b.kind = 'set';
    recordSet(n, 'session', b);
  },
  VariableShowStmt: otherKind,
  TransactionStmt: (_n, b) => {
    b.kind = 'transaction';
  },
  DeclareCursorStmt: declareCursor,
  FetchStmt: otherKind,
  ClosePortalStmt: otherKind,
  ListenStmt: otherKind,
  UnlistenStmt: otherKind,
  NotifyStmt: (_n, b) => {
    b.kind = 'other';
    b.classes.add('write');
    b.note('NOTIFY sends a message to other sessions: counted as a write');
  },
  AlterSystemStmt: (n, b) => {
    b.kind = 'alter';
    b.alterSystem = true;
    const s = obj(n['setstmt']);
    if (s) recordSet(s, 'alter-system', b);
  },
  AlterRoleSetStmt: alterRoleOrDatabaseSet,
  AlterDatabaseSetStmt: alterRoleOrDatabaseSet,
  DiscardStmt: discardStatement,
  LoadStmt: (_n, b) => {
    b.kind = 'other';
    b.opaque('LOAD loads a shared library into the server');
  },
  LockStmt: lockStatement,
  CheckPointStmt: maintenanceStatement,
  VacuumStmt: maintenanceStatement,
  ClusterStmt: maintenanceStatement,
  ReindexStmt: maintenanceStatement,
  RefreshMatViewStmt: maintenanceStatement,
  ConstraintsSetStmt: (_n, b) => {
    b.kind = 'set';
  },
};
