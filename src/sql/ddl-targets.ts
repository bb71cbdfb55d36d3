/**
 * The objects a DDL statement changes that its `writes` cannot hold: the index
 * of CREATE INDEX, the new name of a renamed relation, routines (functions,
 * procedures, aggregates) and types. Recorded on the statement's builder after
 * its family's handler ran; StatementAnalysis.ddlTargets lists them after the
 * relations of `writes` (the audit snapshots their definitions before and after).
 *
 * An unqualified routine or type has no schema here (it goes where CREATE puts
 * it, which the analysis cannot know), except inside CREATE SCHEMA, whose
 * elements go to the new schema.
 *
 * @module
 */
import { RELATION_OBJECTS } from './analyze-ddl.js';
import type { Builder } from './builder.js';
import { arr, unwrapAs, type Obj } from './tree.js';
import type { DdlObjectKind } from './types.js';

/** Object types whose names are functions (routines). */
const ROUTINE_OBJECTS: ReadonlySet<string> = new Set(['OBJECT_FUNCTION', 'OBJECT_PROCEDURE', 'OBJECT_ROUTINE', 'OBJECT_AGGREGATE']);
/** Object types whose names are types. */
const TYPE_OBJECTS: ReadonlySet<string> = new Set(['OBJECT_TYPE', 'OBJECT_DOMAIN']);

/** `routine` or `type` for an object type that names one; undefined for any other. */
function codeOrTypeKind(objtype: unknown): DdlObjectKind | undefined {
  if (typeof objtype !== 'string') return undefined;
  if (ROUTINE_OBJECTS.has(objtype)) return 'routine';
  if (TYPE_OBJECTS.has(objtype)) return 'type';
  return undefined;
}

/** The strings of a List / array of `{String: {sval}}`. */
function nameList(v: unknown): string[] {
  const list = unwrapAs(v, 'List');
  const items = Array.isArray(v) ? v : arr(list?.['items']);
  const out: string[] = [];
  for (const x of items) {
    const s = unwrapAs(x, 'String');
    if (s && typeof s['sval'] === 'string') out.push(s['sval']);
  }
  return out;
}

/** Name parts of a DDL object: ObjectWithArgs, TypeName, List or String. */
function objectNameParts(v: unknown): string[] {
  const owa = unwrapAs(v, 'ObjectWithArgs');
  if (owa && 'objname' in owa) return nameList(owa['objname']);
  const tn = unwrapAs(v, 'TypeName');
  if (tn && 'names' in tn) return nameList(tn['names']);
  const s = unwrapAs(v, 'String');
  if (s && typeof s['sval'] === 'string') return [s['sval']];
  return nameList(v);
}

/** Records `[schema.]name` (the last two parts); returns what it recorded. */
function addNamed(b: Builder, kind: DdlObjectKind, parts: string[]): { schema: string | undefined; name: string } | undefined {
  if (parts.length === 0) return undefined;
  const name = parts[parts.length - 1]!;
  const schema = parts.length >= 2 ? parts[parts.length - 2]! : b.env.elementSchema;
  b.ddlTarget(kind, schema, name);
  return { schema, name };
}

/** The schema of a relation the statement names: as written, else the one its `writes` entry resolved to. */
function relationSchema(b: Builder, rv: Obj | undefined): string | undefined {
  if (!rv) return b.env.elementSchema;
  if (typeof rv['schemaname'] === 'string') return rv['schemaname'];
  for (const w of b.writes.values()) if (w.table === rv['relname']) return w.schema;
  return b.env.elementSchema;
}

/** Routines and types named by an object of type `objtype` (COMMENT ON, ALTER ... OWNER TO, ... DEPENDS ON). */
function namedObject(b: Builder, objtype: unknown, object: unknown): void {
  const kind = codeOrTypeKind(objtype);
  if (kind) addNamed(b, kind, objectNameParts(object));
}

/** Records the named objects of one statement node (the inside of `{Type: n}`). */
type NamedObjects = (n: Obj, b: Builder) => void;

/** By parse-node type: what each DDL statement names besides relations. */
export const DDL_NAMED_OBJECTS: Readonly<Record<string, NamedObjects>> = {
  IndexStmt: (n, b) => {
    if (typeof n['idxname'] === 'string') b.ddlTarget('relation', relationSchema(b, unwrapAs(n['relation'], 'RangeVar')), n['idxname']);
  },
  CreateFunctionStmt: (n, b) => void addNamed(b, 'routine', nameList(n['funcname'])),
  AlterFunctionStmt: (n, b) => void addNamed(b, 'routine', objectNameParts(n['func'])),
  DefineStmt: (n, b) => {
    if (n['kind'] === 'OBJECT_AGGREGATE') addNamed(b, 'routine', nameList(n['defnames']));
    else if (n['kind'] === 'OBJECT_TYPE') addNamed(b, 'type', nameList(n['defnames']));
  },
  CreateEnumStmt: (n, b) => void addNamed(b, 'type', nameList(n['typeName'])),
  CreateRangeStmt: (n, b) => void addNamed(b, 'type', nameList(n['typeName'])),
  AlterEnumStmt: (n, b) => void addNamed(b, 'type', nameList(n['typeName'])),
  AlterDomainStmt: (n, b) => void addNamed(b, 'type', nameList(n['typeName'])),
  CreateDomainStmt: (n, b) => void addNamed(b, 'type', nameList(n['domainname'])),
  DropStmt: (n, b) => {
    for (const o of arr(n['objects'])) namedObject(b, n['removeType'], o);
  },
  GrantStmt: (n, b) => {
    if (n['targtype'] !== 'ACL_TARGET_OBJECT') return;
    for (const o of arr(n['objects'])) namedObject(b, n['objtype'], o);
  },
  CommentStmt: (n, b) => namedObject(b, n['objtype'] ?? n['objectType'], n['object']),
  AlterOwnerStmt: (n, b) => namedObject(b, n['objtype'] ?? n['objectType'], n['object']),
  AlterObjectDependsStmt: (n, b) => namedObject(b, n['objtype'] ?? n['objectType'], n['object']),
  AlterObjectSchemaStmt: (n, b) => {
    // The object under its old and its new schema.
    const kind = codeOrTypeKind(n['objectType']);
    if (!kind) return;
    const t = addNamed(b, kind, objectNameParts(n['object']));
    if (t && typeof n['newschema'] === 'string') b.ddlTarget(kind, n['newschema'], t.name);
  },
  RenameStmt: (n, b) => {
    // The old name is in `writes` (relations) or recorded here; the new one is in the same schema.
    const rt = n['renameType'];
    if (typeof rt !== 'string' || typeof n['newname'] !== 'string') return;
    if (RELATION_OBJECTS.has(rt)) {
      b.ddlTarget('relation', relationSchema(b, unwrapAs(n['relation'], 'RangeVar')), n['newname']);
      return;
    }
    const kind = codeOrTypeKind(rt);
    if (!kind) return;
    const t = addNamed(b, kind, objectNameParts(n['object']));
    if (t) b.ddlTarget(kind, t.schema, n['newname']);
  },
};
