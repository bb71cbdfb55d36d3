/**
 * DDL: CREATE, ALTER, DROP, RENAME, GRANT/REVOKE, COMMENT, TRUNCATE and the
 * other statements that change definitions. Every relation a DDL statement
 * names is a target (`writes`); expressions inside definitions are recorded
 * but do not run now; a view's query is visited as a definition.
 *
 * @module
 */
import type { Builder, StatementHandlers } from './builder.js';
import { QUERY_TYPES, recordFuncCall, visitQuery } from './analyze-dml.js';
import { creationCandidates, qualifiedRelation, resolveNameParts, resolveUnqualified } from './search-path.js';
import { arr, isObj, obj, strings, strVal, unwrap, unwrapAs, type Obj } from './tree.js';
import type { RelationRef, StatementKind } from './types.js';

/** The kind of each DDL statement type (those without a handler of their own are walked by {@link walkDdl}). */
export const KIND_BY_TYPE: Record<string, StatementKind> = {};
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

export function schemaWide(schema: string): RelationRef {
  return qualifiedRelation(schema, '*');
}

/** The name parts of a DDL object given as a List of Strings or a single String. */
export function nameParts(object: unknown): string[] {
  const u = unwrap(object);
  if (u && u[0] === 'List') return strings(u[1]['items']);
  const s = strVal(object);
  return s !== undefined ? [s] : [];
}

/** Adds the relation a DDL object name denotes (by object type). */
export function objectTarget(objtype: unknown, object: unknown, b: Builder): void {
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
export const EVERY_RELATION: RelationRef = Object.freeze({ name: '*.*', schema: '*', table: '*', qualified: false, candidates: Object.freeze(['*']) });


/**
 * Generic walk of a DDL / utility statement: every relation it names is a target
 * (`writes`), except foreign-key referenced tables (`reads`); function calls are
 * recorded (only an opaque function changes the classification: expressions in
 * definitions do not run now); nested queries are visited as reads.
 */
export function walkDdl(node: unknown, b: Builder, key?: string): void {
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

// ---------------------------------------------------------------------------
// Columns DDL definitions read

/**
 * Records the columns a DDL definition reads or keys on, as columns of `rel` (the relation the
 * definition is on): column references in expressions (generated columns, `USING`, CHECK,
 * index expressions and predicates, policy `USING` / `WITH CHECK`, trigger `WHEN` with its
 * `NEW.` / `OLD.`), index and statistics keys, `INCLUDE` and constraint key lists; a foreign
 * key's referenced columns as columns of the referenced table. They are `assignment`s like the
 * columns an ALTER TABLE changes: the statement acts on them, it returns none of their values.
 * So `columns` and `sensitive` rules hold for DDL over the columns they name (a mask rule on
 * `sensitive: [email]` applies to `ADD COLUMN g text GENERATED ALWAYS AS (email) STORED`, and
 * masking then judges it). Nested queries are left to {@link walkDdl} (they are reads).
 */
function definitionColumns(node: unknown, rel: RelationRef, b: Builder): void {
  if (Array.isArray(node)) {
    for (const x of node) definitionColumns(x, rel, b);
    return;
  }
  if (!isObj(node)) return;
  const u = unwrap(node);
  if (!u) {
    for (const v of Object.values(node)) definitionColumns(v, rel, b);
    return;
  }
  const [type, n] = u;
  if (QUERY_TYPES.has(type)) return;
  const col = (name: unknown, r: RelationRef = rel) => {
    if (typeof name === 'string' && name) b.addColumn(name, 'assignment', [r], r.name, 'assignment');
  };
  switch (type) {
    case 'ColumnRef': {
      const fields = arr(n['fields']);
      const last = fields[fields.length - 1];
      if (isObj(last) && 'A_Star' in last) col('*');
      else col(strVal(last));
      return;
    }
    case 'IndexElem':
    case 'StatsElem':
      col(n['name']);
      definitionColumns(n['expr'], rel, b);
      return;
    case 'Constraint': {
      for (const k of ['keys', 'including', 'fk_attrs']) for (const c of arr(n[k])) col(strVal(c));
      const pk = n['pktable'] !== undefined ? b.rangeVar(n['pktable']) : undefined;
      if (pk) for (const c of arr(n['pk_attrs'])) col(strVal(c), pk);
      for (const k of ['raw_expr', 'where_clause', 'exclusions']) definitionColumns(n[k], rel, b);
      return;
    }
    case 'SubLink':
      // `email IN (SELECT ...)` (a policy's USING may hold one): the left side is the relation's.
      definitionColumns(n['testexpr'], rel, b);
      return;
    case 'ColumnDef':
      // The column itself is recorded by the caller (an assignment of ALTER TABLE); its
      // generated expression, USING (raw_default of ALTER COLUMN ... TYPE) and constraints read.
      definitionColumns(n['raw_default'], rel, b);
      definitionColumns(n['constraints'], rel, b);
      return;
    default:
      for (const v of Object.values(n)) definitionColumns(v, rel, b);
  }
}

// ---------------------------------------------------------------------------
// The statements

/** GRANT / REVOKE: privileges on tables and sequences (or all of a schema's) change those relations. */
function grantStatement(n: Obj, b: Builder, _text: string, type: string): void {
  b.kind = n['is_grant'] ? 'grant' : 'revoke';
  if (type !== 'GrantStmt') return;
  if (n['targtype'] === 'ACL_TARGET_ALL_IN_SCHEMA') {
    for (const s of strings(n['objects'])) b.addWrite(schemaWide(s));
  } else if (n['objtype'] === 'OBJECT_TABLE' || n['objtype'] === 'OBJECT_SEQUENCE') {
    walkDdl(n['objects'], b);
  }
}

function alterDefaultPrivileges(n: Obj, b: Builder): void {
  b.kind = 'alter';
  b.classes.add(obj(n['action'])?.['is_grant'] ? 'grant' : 'revoke');
  // Relations created later in the schemas named (IN SCHEMA), else anywhere.
  const schemas = arr(n['options']).flatMap((o) => {
    const d = unwrapAs(o, 'DefElem');
    return d?.['defname'] === 'schemas' ? nameParts(d['arg']) : [];
  });
  if (schemas.length) for (const s of schemas) b.addWrite(schemaWide(s));
  else b.addWrite(EVERY_RELATION);
}

/** DROP OWNED, REASSIGN OWNED, ALTER TABLE ALL IN TABLESPACE: every object a role owns / every table of a tablespace. */
function everyRelation(_n: Obj, b: Builder, _text: string, type: string): void {
  b.kind = KIND_BY_TYPE[type]!;
  b.addWrite(EVERY_RELATION);
}

/** CREATE TABLE AS / CREATE MATERIALIZED VIEW / SELECT INTO: creates a relation and writes the query's rows into it. */
function createTableAs(n: Obj, b: Builder): void {
  b.kind = 'create';
  if (n['objtype'] === 'OBJECT_MATVIEW') b.classes.add('code');
  const into = obj(n['into']);
  const r = into ? b.rangeVar(into['rel']) : undefined;
  if (r) b.addWrite(r);
  b.classes.add('write');
  visitQuery(n['query'], null, b);
}

/** CREATE VIEW: code (its query runs when the view is read), visited as a definition. */
function createView(n: Obj, b: Builder): void {
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
}

/** CREATE SCHEMA: the schema, and its elements analysed as statements created in it. */
function createSchema(n: Obj, b: Builder, text: string): void {
  b.kind = 'create';
  const schema = typeof n['schemaname'] === 'string' ? n['schemaname'] : undefined;
  if (schema) b.addWrite(schemaWide(schema));
  // Elements are created in the new schema.
  const saved = b.env.searchPath;
  const savedSchema = b.env.elementSchema;
  if (schema) b.env.searchPath = [schema];
  b.env.elementSchema = schema;
  try {
    for (const e of arr(n['schemaElts'])) {
      const element = b.nested(obj(e) ?? {}, text);
      b.absorb(element, { kinds: true, effects: true });
      for (const t of element.ddlTargets) b.ddlTarget(t.kind, t.schema, t.name);
    }
  } finally {
    b.env.searchPath = saved;
    b.env.elementSchema = savedSchema;
  }
}

/** CREATE TABLE: an unqualified name goes to the first existing schema of the path, so each is a candidate. */
function createTable(n: Obj, b: Builder): void {
  b.kind = 'create';
  const rv = unwrapAs(n['relation'], 'RangeVar');
  if (!(rv && typeof rv['relname'] === 'string' && typeof rv['schemaname'] !== 'string' && rv['relpersistence'] !== 't')) {
    walkDdl(n, b);
    return;
  }
  const cands = creationCandidates(b.env.searchPath, b.env.user);
  b.addWrite(
    cands && cands.length > 0
      ? { ...qualifiedRelation(cands[0]!, rv['relname']), qualified: false, candidates: cands }
      : resolveUnqualified(rv['relname'], b.env.searchPath, b.env.user),
  );
  const rest: Obj = { ...n };
  delete rest['relation'];
  walkDdl(rest, b);
}

/**
 * CREATE TRIGGER / EVENT TRIGGER: the trigger runs its function, recorded as a
 * call so that the function's body is looked up and judged with this statement
 * (governance/code-catalog.ts).
 */
function createTrigger(n: Obj, b: Builder): void {
  b.kind = 'create';
  b.classes.add('code');
  walkDdl(n, b);
  const on = n['relation'] !== undefined ? b.rangeVar(n['relation']) : undefined;
  if (on) definitionColumns(n['whenClause'], on, b);
  const fname = strings(n['funcname']).join('.');
  if (fname) {
    b.functions.add(fname);
    b.note(`the trigger runs ${fname}(): judged by what that function does`);
  }
}

function createPolicy(n: Obj, b: Builder): void {
  b.kind = 'create';
  b.classes.add('code');
  walkDdl(n, b);
  policyColumns(n, b);
}

/** ALTER POLICY: walked like any DDL, plus the columns its new USING / WITH CHECK read. */
function alterPolicy(n: Obj, b: Builder): void {
  b.kind = 'alter';
  walkDdl(n, b);
  policyColumns(n, b);
}

function policyColumns(n: Obj, b: Builder): void {
  const on = b.rangeVar(n['table']);
  if (on) definitionColumns([n['qual'], n['with_check']], on, b);
}

/** ALTER TABLE subcommands that bond two relations' rows (inheritance, partitions). */
const BONDS: ReadonlySet<string> = new Set(['AT_AddInherit', 'AT_DropInherit', 'AT_AttachPartition', 'AT_DetachPartition', 'AT_DetachPartitionFinalize']);

/** ALTER TABLE: the table, and the columns it changes (so `columns` rules can protect them). */
function alterTable(n: Obj, b: Builder): void {
  b.kind = 'alter';
  walkDdl(n, b);
  const r = b.rangeVar(n['relation']);
  if (!r) return;
  for (const c of arr(n['cmds'])) {
    const cmd = unwrapAs(c, 'AlterTableCmd');
    if (!cmd) continue;
    const subtype = String(cmd['subtype'] ?? '');
    if (typeof cmd['name'] === 'string' && subtype.includes('Column')) b.addColumn(cmd['name'], 'assignment', [r], r.name);
    const def = unwrapAs(cmd['def'], 'ColumnDef');
    if (def && typeof def['colname'] === 'string') b.addColumn(def['colname'], 'assignment', [r], r.name);
    if (BONDS.has(subtype)) {
      // INHERIT / NO INHERIT parent, ATTACH / DETACH PARTITION child: both sides' rows change hands.
      movesColumns(r, b);
      const pc = unwrapAs(cmd['def'], 'PartitionCmd');
      const other = b.rangeVar(pc ? pc['name'] : cmd['def']);
      if (other) movesColumns(other, b);
      continue;
    }
    definitionColumns(cmd['def'], r, b);
  }
}

/** CREATE INDEX: the table, and the columns its keys, INCLUDE list and predicate read. */
function createIndex(n: Obj, b: Builder): void {
  b.kind = 'create';
  walkDdl(n, b);
  const r = b.rangeVar(n['relation']);
  if (!r) return;
  definitionColumns([n['indexParams'], n['indexIncludingParams'], n['whereClause']], r, b);
}

/** CREATE STATISTICS: the table, and the columns and expressions it keeps statistics of. */
function createStatistics(n: Obj, b: Builder): void {
  b.kind = 'create';
  walkDdl(n, b);
  const rels = arr(n['relations']);
  const r = rels.length === 1 ? b.rangeVar(rels[0]) : undefined;
  if (r) definitionColumns(n['exprs'], r, b);
}

function dropStatement(n: Obj, b: Builder): void {
  b.kind = 'drop';
  for (const o of arr(n['objects'])) objectTarget(n['removeType'], o, b);
}

/** ALTER ... RENAME: a schema under both names, else the relation (and a renamed column). */
function renameStatement(n: Obj, b: Builder): void {
  b.kind = 'alter';
  const rt = n['renameType'];
  if (rt === 'OBJECT_SCHEMA' && typeof n['subname'] === 'string') {
    const old = schemaWide(n['subname']);
    b.addWrite(old);
    if (typeof n['newname'] === 'string') b.addWrite(schemaWide(n['newname']));
    movesColumns(old, b);
    return;
  }
  const r = b.rangeVar(n['relation']);
  if (r) b.addWrite(r);
  if (r && rt === 'OBJECT_COLUMN' && typeof n['subname'] === 'string') b.addColumn(n['subname'], 'assignment', [r], r.name);
  else if (r && typeof rt === 'string' && ROW_OBJECTS.has(rt)) movesColumns(r, b);
  if (!r) objectTarget(rt, n['object'], b);
}

/**
 * A statement that moves every column of a relation (or of a schema's relations) to another
 * name: a rename, SET SCHEMA, a new or dropped inheritance or partition bond. Its columns are
 * all acted on (`*`, an assignment), so `columns` and `sensitive` rules hold (possibly) for it
 * and a masked column is not taken out from under the pattern that names it unjudged.
 */
const ROW_OBJECTS: ReadonlySet<string> = new Set(['OBJECT_TABLE', 'OBJECT_VIEW', 'OBJECT_MATVIEW', 'OBJECT_FOREIGN_TABLE']);
function movesColumns(r: RelationRef, b: Builder): void {
  b.addColumn('*', 'assignment', [r], r.name, 'assignment');
}

/** ALTER ... SET SCHEMA: the relation under its old and its new schema. */
function alterObjectSchema(n: Obj, b: Builder): void {
  b.kind = 'alter';
  const r = b.rangeVar(n['relation']);
  if (!r) return;
  b.addWrite(r);
  if (typeof n['newschema'] === 'string') b.addWrite(qualifiedRelation(n['newschema'], r.table));
  if (typeof n['objectType'] === 'string' && ROW_OBJECTS.has(n['objectType'])) movesColumns(r, b);
}

/** COMMENT ON / SECURITY LABEL ON: changes the object's definition. */
function commentStatement(n: Obj, b: Builder, _text: string, type: string): void {
  b.kind = 'other';
  b.classes.add('ddl');
  if (type === 'CommentStmt') b.classes.add('comment');
  objectTarget(n['objtype'], n['object'], b);
}

/** DDL statements with a handler of their own, by parse-node type. */
export const DDL_STATEMENTS: StatementHandlers = {
  TruncateStmt: (n, b) => {
    b.kind = 'truncate';
    b.classes.add('write');
    walkDdl(n['relations'], b);
  },
  CommentStmt: commentStatement,
  SecLabelStmt: commentStatement,
  GrantStmt: grantStatement,
  GrantRoleStmt: grantStatement,
  AlterDefaultPrivilegesStmt: alterDefaultPrivileges,
  DropOwnedStmt: everyRelation,
  ReassignOwnedStmt: everyRelation,
  AlterTableMoveAllStmt: everyRelation,
  CreateTableAsStmt: createTableAs,
  ViewStmt: createView,
  CreateSchemaStmt: createSchema,
  CreateStmt: createTable,
  CreateTrigStmt: createTrigger,
  CreateEventTrigStmt: createTrigger,
  CreatePolicyStmt: createPolicy,
  AlterPolicyStmt: alterPolicy,
  IndexStmt: createIndex,
  CreateStatsStmt: createStatistics,
  AlterTableStmt: alterTable,
  DropStmt: dropStatement,
  RenameStmt: renameStatement,
  AlterObjectSchemaStmt: alterObjectSchema,
  ImportForeignSchemaStmt: (n, b) => {
    b.kind = 'create';
    if (typeof n['local_schema'] === 'string') b.addWrite(schemaWide(n['local_schema']));
  },
  CreateSubscriptionStmt: subscription,
  AlterSubscriptionStmt: subscription,
};

function subscription(_n: Obj, b: Builder, _text: string, type: string): void {
  b.kind = KIND_BY_TYPE[type]!;
  b.opaque('a subscription copies data in from another server');
}

/** Any other statement: a DDL type of {@link KIND_BY_TYPE} is walked generically; anything else is opaque. */
export function otherStatement(n: Obj, b: Builder, _text: string, type: string): void {
  const kind = KIND_BY_TYPE[type];
  if (kind) {
    b.kind = kind;
    walkDdl(n, b);
    return;
  }
  b.kind = 'other';
  b.opaque(`statement type ${type} is not classified by Warden`);
}
