/**
 * The relations a statement's analysis resolved, looked up by name: how the
 * masking checkers (allowlist.ts, ddl.ts) map a relation named in the parse tree
 * to the analysis' {@link RelationRef} (the schemas it may be in).
 */
import type { RelationRef } from '../sql/types.js';

export class RelationRefs {
  readonly #byTable = new Map<string, RelationRef[]>();

  constructor(rels: readonly RelationRef[]) {
    for (const r of rels) {
      const l = this.#byTable.get(r.table) ?? [];
      l.push(r);
      this.#byTable.set(r.table, l);
    }
  }

  /**
   * The reference for `schema.table` (`schema` undefined: unqualified). Several
   * references of the analysis to the same name merge their candidate schemas;
   * a name the analysis did not resolve gets one of its own: in `schema` when
   * qualified, else in any schema.
   */
  of(schema: string | undefined, table: string): RelationRef {
    const known = (this.#byTable.get(table) ?? []).filter((r) => (schema === undefined ? !r.qualified : r.qualified && r.schema === schema));
    if (known.length === 1) return known[0]!;
    if (known.length > 1) return { ...known[0]!, candidates: [...new Set(known.flatMap((r) => r.candidates))] };
    if (schema !== undefined) return { name: `${schema}.${table}`, schema, table, qualified: true, candidates: [schema] };
    return { name: table, schema: '*', table, qualified: false, candidates: ['*'] };
  }
}
