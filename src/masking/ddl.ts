/**
 * DDL on relations with masked columns, for identities with masked columns (docs/masking.md,
 * "DDL on masked relations"). Strict and relaxed mode alike.
 *
 * Masking knows a masked column by its relation's and its own name (`sensitive.columns`) and,
 * through the catalog, by the relations that show its rows (views, inheritance). DDL can store
 * a masked value where no pattern names it (a generated column, `ALTER ... TYPE ... USING`),
 * move a masked column out from under its pattern (a rename, `SET SCHEMA`, a new inheritance
 * parent), or make the statement's success or a catalog figure depend on masked values (a
 * CHECK or UNIQUE constraint, an index key or predicate — `pg_class.reltuples` of a partial
 * index counts its rows —, a policy's, trigger's or rule's condition). So the rule, an
 * allowlist:
 *
 * - a masked column may be **named** by DDL only to drop it, to set or drop its default, to
 *   drop its NOT NULL, to set its statistics target, storage, compression or attribute
 *   options, to drop its expression or identity (ALTER TABLE subcommands that read no value),
 *   and in COMMENT, GRANT and REVOKE (not checked here: they read nothing);
 * - no expression or key list of DDL may **read** a masked column of the relation it is on
 *   (generated columns, USING, constraints, foreign keys referencing one, index keys, INCLUDE
 *   and predicates, extended statistics, policy USING / WITH CHECK, trigger WHEN, rule WHERE
 *   and the NEW / OLD references of its actions — also whole-row `NEW`, `OLD.*`);
 * - a relation with masked columns may not be **renamed** or moved to another schema, nor a
 *   masked column renamed, nor a schema that could hold one renamed; it may not gain or lose
 *   an inheritance parent or a partition bond (`INHERIT`, `NO INHERIT`, `ATTACH PARTITION`,
 *   `DETACH PARTITION`, on either side).
 *
 * DDL inside code (a DO block, a function or procedure a statement calls or creates, a trigger's
 * function) is not parsed statement by statement here: code that runs DDL on a relation with
 * masked columns, or on a schema that could hold one, is refused whatever the DDL (fail closed).
 *
 * Everything else passes (adding, dropping and altering other columns, indexes and
 * constraints on unmasked columns, triggers whose condition reads none, renaming other
 * relations). A view's, function's, rule's or trigger's *code* is judged by
 * masking/session-code.ts.
 *
 * Pure: works on libpg-query's parse tree of the analysed text.
 */
import type { AnalysisOk, RelationRef, StatementAnalysis } from '../sql/types.js';
import { parseStatements, type ParseNode } from '../sql/parser.js';
import { nodes as list, obj, sval as str } from '../sql/tree.js';
import { matchRelation, NO } from '../policy/patterns.js';
import type { CompiledSensitive } from '../policy/sensitive.js';
import type { RelationColumns } from './allowlist.js';
import { RelationRefs } from './relation-refs.js';

export type DdlVerdict = { readonly ok: true } | { readonly ok: false; readonly reason: string; readonly column: string };

const OK: DdlVerdict = Object.freeze({ ok: true });

/** ALTER TABLE subcommands that may name a masked column: they read none of its values. */
const NAMES_ONLY = new Set([
  'AT_DropColumn',
  'AT_ColumnDefault',
  'AT_DropNotNull',
  'AT_SetStatistics',
  'AT_SetOptions',
  'AT_ResetOptions',
  'AT_SetStorage',
  'AT_SetCompression',
  'AT_DropExpression',
  'AT_DropIdentity',
]);

/** ALTER TABLE subcommands that change which relations show a relation's rows. */
const BONDS: Record<string, string> = {
  AT_AddInherit: 'INHERIT',
  AT_DropInherit: 'NO INHERIT',
  AT_AttachPartition: 'ATTACH PARTITION',
  AT_DetachPartition: 'DETACH PARTITION',
  AT_DetachPartitionFinalize: 'DETACH PARTITION ... FINALIZE',
};

/** Relation kinds whose rename or SET SCHEMA moves their columns out from under a pattern. */
const RELATION_OBJECTS = new Set(['OBJECT_TABLE', 'OBJECT_VIEW', 'OBJECT_MATVIEW', 'OBJECT_FOREIGN_TABLE']);

function rangeVar(n: unknown): ParseNode | undefined {
  const o = obj(n);
  if (!o) return undefined;
  return obj(o.RangeVar) ?? (typeof o.relname === 'string' ? o : undefined);
}

class Refusal {
  constructor(
    readonly column: string,
    readonly reason: string,
  ) {}
}

interface Target {
  readonly display: string;
  /** The relation's name and alias, which a whole-row reference would use. */
  readonly names: readonly string[];
  /** The masked column of that name (its display with type), or null. */
  column(name: string): string | null;
  /** Some masked column of the relation, or null. */
  any(): string | null;
}

/** What DDL reads inside a subtree: column names, and whole-row references. */
interface Reads {
  readonly names: Set<string>;
  /** Qualifiers of `x.*` and single-name references (possibly whole rows). */
  readonly rows: Set<string>;
}

/**
 * Collects the column names an expression or key list reads. Skips what names no existing
 * column: a new column's own name, a constraint's name, a referenced table (checked apart).
 */
function reads(node: unknown, into: Reads = { names: new Set(), rows: new Set() }): Reads {
  if (node === null || typeof node !== 'object') return into;
  if (Array.isArray(node)) {
    for (const x of node) reads(x, into);
    return into;
  }
  for (const [k, v] of Object.entries(node as ParseNode)) {
    if (k === 'ColumnRef') {
      const fields = list(obj(v)?.fields);
      const last = fields[fields.length - 1];
      if (obj(last)?.A_Star !== undefined) {
        const q = str(fields[fields.length - 2]);
        into.rows.add(q ?? '*');
      } else {
        const name = str(last);
        if (name !== undefined) into.names.add(name);
        if (fields.length === 1 && name !== undefined) into.rows.add(name);
      }
      continue;
    }
    if (k === 'keys' || k === 'fk_attrs' || k === 'including') {
      for (const x of list(v)) {
        const s = str(x);
        if (s !== undefined) into.names.add(s);
      }
      continue;
    }
    if ((k === 'IndexElem' || k === 'StatsElem') && typeof obj(v)?.name === 'string') into.names.add(obj(v)!.name as string);
    if (k === 'colname' || k === 'conname' || k === 'pktable' || k === 'pk_attrs' || k === 'relation' || k === 'typeName') continue;
    reads(v, into);
  }
  return into;
}

class DdlChecker {
  readonly #rels: RelationRefs;

  constructor(
    rels: readonly RelationRef[],
    private readonly sensitive: CompiledSensitive,
    private readonly relationColumns: RelationColumns | undefined,
  ) {
    this.#rels = new RelationRefs(rels);
  }

  private ref(rv: ParseNode): RelationRef {
    const table = typeof rv.relname === 'string' ? rv.relname : '';
    const schema = typeof rv.schemaname === 'string' && rv.schemaname !== '' ? rv.schemaname : undefined;
    return this.#rels.of(schema, table);
  }

  target(rvNode: unknown): Target | null {
    const rv = rangeVar(rvNode);
    if (!rv) return null;
    const ref = this.ref(rv);
    const display = ref.qualified ? ref.name : ref.table;
    const views = this.relationColumns?.(ref);
    const alias = obj(rv.alias)?.aliasname;
    return {
      display,
      names: [ref.table, ...(typeof alias === 'string' ? [alias] : [])],
      column: (name) => {
        for (const e of this.sensitive.entries) {
          if (e.pattern.column?.test(name) && matchRelation(e.pattern, ref) !== NO) return `${display}.${name} (${e.type})`;
        }
        const t = views?.get(name);
        return t !== undefined ? `${display}.${name} (${t})` : null;
      },
      any: () => {
        for (const e of this.sensitive.entries) {
          if (matchRelation(e.pattern, ref) !== NO) return `${display}.${e.pattern.column?.text ?? '*'} (${e.type})`;
        }
        const first = views ? [...views][0] : undefined;
        return first ? `${display}.${first[0]} (${first[1]})` : null;
      },
    };
  }

  /** Refuses when what `node` reads includes a masked column of `t` (or one of its whole rows). */
  private noReads(t: Target | null, node: unknown, what: string, rowNames: readonly string[] = []): void {
    if (!t || node === undefined) return;
    const r = reads(node);
    for (const name of r.names) {
      const m = t.column(name);
      if (m) throw new Refusal(m, `${what} reads the masked column ${m}`);
    }
    const rows = new Set([...t.names, ...rowNames]);
    for (const q of r.rows) {
      if (!rows.has(q)) continue;
      const m = t.any();
      if (m) throw new Refusal(m, `${what} reads a whole row of ${t.display}, which has the masked column ${m}`);
    }
  }

  /** A foreign key's referenced columns: a masked one would be compared with every new key (an existence test). */
  private references(c: ParseNode | undefined, what: string): void {
    if (!c || c.contype !== 'CONSTR_FOREIGN') return;
    const pk = this.target(c.pktable);
    if (!pk) return;
    for (const a of list(c.pk_attrs)) {
      const name = str(a);
      const m = name !== undefined ? pk.column(name) : null;
      if (m) throw new Refusal(m, `${what} references the masked column ${m}`);
    }
  }

  private constraints(n: unknown, what: string): void {
    if (n === null || typeof n !== 'object') return;
    if (Array.isArray(n)) {
      for (const x of n) this.constraints(x, what);
      return;
    }
    for (const [k, v] of Object.entries(n as ParseNode)) {
      if (k === 'Constraint') this.references(obj(v), what);
      else this.constraints(v, what);
    }
  }

  statement(node: ParseNode): void {
    const [kind, body] = Object.entries(node)[0] ?? [];
    const n = obj(body);
    if (!kind || !n) return;
    switch (kind) {
      case 'AlterTableStmt':
        return this.alterTable(n);
      case 'RenameStmt':
        return this.rename(n);
      case 'AlterObjectSchemaStmt': {
        const t = RELATION_OBJECTS.has(String(n.objectType)) ? this.target(n.relation) : null;
        const m = t?.any();
        if (m) throw new Refusal(m, `moving ${t!.display} to another schema would take its masked column ${m} out of sensitive.columns, which names it by schema and table`);
        return;
      }
      case 'IndexStmt':
        return this.noReads(this.target(n.relation), [n.indexParams, n.indexIncludingParams, n.whereClause], 'the index (its keys, INCLUDE columns or predicate)');
      case 'CreateStatsStmt':
        for (const r of list(n.relations)) this.noReads(this.target(r), n.exprs, 'the extended statistics');
        return;
      case 'CreatePolicyStmt':
      case 'AlterPolicyStmt':
        return this.noReads(this.target(n.table), [n.qual, n.with_check], `the policy ${String(n.policy_name)} (its USING or WITH CHECK expression)`);
      case 'CreateTrigStmt':
        return this.noReads(this.target(n.relation), n.whenClause, `the WHEN condition of the trigger ${String(n.trigname)}`, ['new', 'old']);
      case 'RuleStmt':
        return this.rule(n);
      case 'CreateStmt':
        this.constraints(n.tableElts, `the table ${String(rangeVar(n.relation)?.relname ?? '')}`);
        return;
      default:
        return;
    }
  }

  private alterTable(n: ParseNode): void {
    const t = this.target(n.relation);
    for (const c of list(n.cmds)) {
      const cmd = obj(c.AlterTableCmd);
      if (!cmd) continue;
      const subtype = String(cmd.subtype ?? '');
      const what = `ALTER TABLE ${t?.display ?? ''}`;
      const bond = BONDS[subtype];
      if (bond) {
        const other = this.target(obj(cmd.def)?.PartitionCmd ? obj(obj(cmd.def)!.PartitionCmd)!.name : cmd.def);
        for (const side of [t, other]) {
          const m = side?.any();
          if (m) throw new Refusal(m, `${what} ... ${bond} would change which relations show the rows of ${side!.display}, whose masked column ${m} is known to masking by its relation's name`);
        }
        continue;
      }
      if (typeof cmd.name === 'string' && t && !NAMES_ONLY.has(subtype)) {
        const m = t.column(cmd.name);
        if (m) throw new Refusal(m, `${what} changes the masked column ${m} in a way that reads its values (${subtype.replace(/^AT_/, '')})`);
      }
      this.noReads(t, cmd.def, `${what} (a generated column, USING, constraint or default)`);
      this.constraints(cmd.def, what);
    }
  }

  private rename(n: ParseNode): void {
    const rt = String(n.renameType);
    if (rt === 'OBJECT_SCHEMA' && typeof n.subname === 'string') {
      const ref: RelationRef = { name: `${n.subname}.*`, schema: n.subname, table: '*', qualified: true, candidates: [n.subname] };
      const e = this.sensitive.entries.find((x) => matchRelation(x.pattern, ref) !== NO);
      if (e) throw new Refusal(`${n.subname}.* (${e.type})`, `renaming the schema ${n.subname} would take its masked columns out of sensitive.columns, which names them by schema`);
      return;
    }
    const t = this.target(n.relation);
    if (!t) return;
    if (rt === 'OBJECT_COLUMN' && typeof n.subname === 'string') {
      const m = t.column(n.subname);
      if (m) throw new Refusal(m, `renaming the masked column ${m} would take it out of sensitive.columns, which names it`);
      return;
    }
    if (RELATION_OBJECTS.has(rt)) {
      const m = t.any();
      if (m) throw new Refusal(m, `renaming ${t.display} would take its masked column ${m} out of sensitive.columns, which names it by relation`);
    }
  }

  /** A rule's condition and its actions' NEW / OLD references read the rule's relation. */
  private rule(n: ParseNode): void {
    const t = this.target(n.relation);
    if (!t || !t.any()) return;
    const what = `the rule ${String(n.rulename)}`;
    this.noReads(t, n.whereClause, `the WHERE condition of ${what}`, ['new', 'old']);
    // In the actions, unqualified names belong to the actions' own tables; NEW.x and OLD.x are the rule's relation.
    const qualified: { rel: string; col: string }[] = [];
    const walk = (x: unknown): void => {
      if (x === null || typeof x !== 'object') return;
      if (Array.isArray(x)) return x.forEach(walk);
      for (const [k, v] of Object.entries(x as ParseNode)) {
        if (k === 'ColumnRef') {
          const fields = list(obj(v)?.fields);
          const head = str(fields[0]);
          if (head === 'new' || head === 'old') {
            const last = fields[fields.length - 1];
            qualified.push({ rel: head, col: fields.length === 1 || obj(last)?.A_Star !== undefined ? '*' : (str(last) ?? '*') });
          }
        } else walk(v);
      }
    };
    walk(n.actions);
    for (const q of qualified) {
      const m = q.col === '*' ? t.any() : t.column(q.col);
      if (m) throw new Refusal(m, `the actions of ${what} read ${q.rel.toUpperCase()}${q.col === '*' ? ' (a whole row)' : `.${q.col}`}, the masked column ${m}`);
    }
  }
}

/**
 * Checks an analysed text's DDL against the rule in the module comment.
 * `relationColumns` adds the masked columns the catalog knows (views, inheritance).
 */
export function checkMaskedDdl(analysis: AnalysisOk, sensitive: CompiledSensitive, relationColumns?: RelationColumns): DdlVerdict {
  if (sensitive.entries.length === 0) return OK;
  if (!analysis.statements.some((st) => st.classes.has('ddl') || st.classes.has('code'))) return OK;
  const inCode = ddlInCode(analysis, sensitive, relationColumns);
  if (inCode) return inCode;
  const parsed = parseStatements(analysis.sql);
  if (!parsed.ok) return OK; // refused elsewhere (masking refuses what it cannot parse)
  const rels: RelationRef[] = [];
  for (const st of analysis.statements) rels.push(...st.reads, ...st.writes);
  const checker = new DdlChecker(rels, sensitive, relationColumns);
  try {
    for (const st of parsed.statements) checker.statement(st.stmt);
  } catch (e) {
    if (e instanceof Refusal) {
      return {
        ok: false,
        column: e.column,
        reason:
          `${e.reason}: an identity with masked columns may not run DDL that reads masked values (generated columns, USING, constraints, index keys and predicates, statistics, policy, trigger and rule conditions) ` +
          `or that moves masked columns out from under sensitive.columns (renames, SET SCHEMA, inheritance and partition changes); ask an identity without a mask rule to run it`,
      };
    }
    throw e;
  }
  return OK;
}

/** Code a statement runs or defines, whose own statements Warden does not see one by one here. */
function codeOf(st: StatementAnalysis): { via: string; body: StatementAnalysis }[] {
  const out = (st.code ?? []).map((r) => ({ via: r.via, body: r.body }));
  if (st.kind === 'do') out.unshift({ via: 'the DO block', body: st });
  else if (st.body) out.unshift({ via: 'the code it defines', body: st.body });
  return out;
}

/** DDL run by code on a relation with masked columns (or a schema that could hold one): refused whatever it is. */
function ddlInCode(analysis: AnalysisOk, sensitive: CompiledSensitive, relationColumns: RelationColumns | undefined): DdlVerdict | null {
  for (const st of analysis.statements) {
    for (const { via, body } of codeOf(st)) {
      if (!body.classes.has('ddl')) continue;
      for (const r of body.writes) {
        const e = sensitive.entries.find((x) => matchRelation(x.pattern, r) !== NO);
        const v = e ? undefined : relationColumns?.(r);
        const m = e ? `${r.table === '*' ? `${r.schema}.*` : r.table}.${e.pattern.column?.text ?? '*'} (${e.type})` : v && v.size > 0 ? `${r.table}.${[...v][0]![0]} (${[...v][0]![1]})` : null;
        if (!m) continue;
        return {
          ok: false,
          column: m,
          reason:
            `${via} runs DDL on ${r.qualified ? r.name : r.table === '*' ? `${r.schema}.*` : r.table}, which has the masked column ${m}, and Warden checks DDL on masked relations only in statements it sees, not inside code: ` +
            `an identity with masked columns may not run DDL on masked relations from DO blocks, functions or procedures; run the statement itself, or ask an identity without a mask rule to run it`,
        };
      }
    }
  }
  return null;
}
