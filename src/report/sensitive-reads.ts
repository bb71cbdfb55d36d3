/**
 * Who touched which sensitive columns: statements whose record names sensitive
 * types (`sensitive` of statement.begin), grouped by type, identity, identity
 * kind and whether the result was masked, with rows and the columns involved.
 *
 * Masked: the decision was `mask`, or the completion names masked columns
 * (`statement.end.masked`: a mask rule applied beside an approve rule).
 * Columns: a statement record names sensitive types and tables, not columns: the
 * columns listed are those of the type in the tables read, per the report
 * configuration's `sensitive.columns`; `maskedColumns` are the result columns
 * the completions say were masked.
 */
import { controlsOf } from './controls.js';
import type { EndFacts, StatementFacts } from './facts.js';
import type { Aggregator, SectionBase } from './types.js';

export interface SensitiveGroup {
  type: string;
  identity: string;
  kind: string;
  masked: boolean;
  statements: number;
  /** Rows sent to the client, from the completions (statements without one count 0 and are in `noCompletion`). */
  rows: number;
  noCompletion: number;
  access: string[];
  tables: string[];
  /** Columns of the type in the tables read, per the sensitive map (`schema.table.column`). */
  columns: string[];
  /** Result columns the completions say were masked (as the client saw them named). */
  maskedColumns: string[];
  onBehalfOf: string[];
  first: string;
  last: string;
}

export interface SensitiveTypeSummary {
  type: string;
  statements: number;
  masked: number;
  unmasked: number;
  identities: number;
  rowsUnmasked: number;
}

export interface SensitiveReadsSection extends SectionBase {
  id: 'sensitive-reads';
  statements: number;
  maskedStatements: number;
  unmaskedStatements: number;
  byType: SensitiveTypeSummary[];
  groups: SensitiveGroup[];
}

interface Group {
  type: string;
  identity: string;
  kind: string;
  masked: boolean;
  statements: number;
  rows: number;
  noCompletion: number;
  access: Set<string>;
  tables: Set<string>;
  columns: Set<string>;
  maskedColumns: Set<string>;
  onBehalfOf: Set<string>;
  first: string;
  last: string;
}

/** `schema.table.column` patterns (with `*`) of the sensitive map, by type. */
export type SensitiveMap = Readonly<Record<string, string>>;

const unquote = (s: string): string => s.replace(/"/g, '');

function partMatches(pattern: string, value: string): boolean {
  if (pattern === '*') return true;
  if (!pattern.includes('*')) return pattern.toLowerCase() === value.toLowerCase();
  const re = new RegExp(`^${pattern.split('*').map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`, 'i');
  return re.test(value);
}

/** Columns of `type` in `table` (`schema.table`) per the sensitive map, as `table.column` (or the pattern when the column part is a wildcard). */
export function mapColumns(map: SensitiveMap, type: string, table: string): string[] {
  const [schema, name] = unquote(table).split('.');
  if (name === undefined) return [];
  const out: string[] = [];
  for (const [pattern, t] of Object.entries(map)) {
    if (t !== type) continue;
    const [ps, pt, pc] = pattern.split('.');
    if (pc === undefined || !partMatches(ps, schema) || !partMatches(pt, name)) continue;
    out.push(`${schema}.${name}.${pc}`);
  }
  return out;
}

export function sensitiveReads(o: { map?: SensitiveMap }): Aggregator<SensitiveReadsSection> {
  const groups = new Map<string, Group>();
  const map = o.map ?? {};
  let statementsTotal = 0;
  let maskedTotal = 0;
  const add = (f: StatementFacts, e: EndFacts | undefined): void => {
    const masked = f.action === 'mask' || (e !== undefined && e.masked.length > 0);
    statementsTotal++;
    if (masked) maskedTotal++;
    const access = f.writes.length > 0 && f.reads.length === 0 ? 'write' : f.writes.length > 0 ? 'read+write' : 'read';
    for (const type of f.sensitive) {
      const key = `${type}\u0000${f.identity}\u0000${f.kind}\u0000${masked ? 1 : 0}`;
      let g = groups.get(key);
      if (!g) {
        g = { type, identity: f.identity, kind: f.kind, masked, statements: 0, rows: 0, noCompletion: 0, access: new Set(), tables: new Set(), columns: new Set(), maskedColumns: new Set(), onBehalfOf: new Set(), first: f.ts, last: f.ts };
        groups.set(key, g);
      }
      g.statements++;
      if (e) g.rows += e.rows;
      else g.noCompletion++;
      g.access.add(access);
      if (f.onBehalfOf) g.onBehalfOf.add(f.onBehalfOf);
      if (f.ts < g.first) g.first = f.ts;
      if (f.ts > g.last) g.last = f.ts;
      for (const t of f.tables) g.tables.add(unquote(t));
      if (e) for (const c of e.masked) g.maskedColumns.add(c);
      for (const t of f.reads.length > 0 ? f.reads : f.tables) for (const c of mapColumns(map, type, t)) g.columns.add(c);
    }
  };
  return {
    keep: (f) => f.type === 'statement.begin' && f.sensitive.length > 0,
    end(f, e) {
      if (f.type === 'statement.begin' && f.sensitive.length > 0) add(f, e);
    },
    finish() {
      const list = [...groups.values()].sort((a, b) => a.type.localeCompare(b.type, 'en', { numeric: true }) || a.identity.localeCompare(b.identity, 'en', { numeric: true }) || Number(a.masked) - Number(b.masked));
      const byType = new Map<string, SensitiveTypeSummary & { ids: Set<string> }>();
      for (const g of list) {
        let t = byType.get(g.type);
        if (!t) byType.set(g.type, (t = { type: g.type, statements: 0, masked: 0, unmasked: 0, identities: 0, rowsUnmasked: 0, ids: new Set() }));
        t.statements += g.statements;
        if (g.masked) t.masked += g.statements;
        else {
          t.unmasked += g.statements;
          t.rowsUnmasked += g.rows;
        }
        t.ids.add(g.identity);
      }
      return {
        id: 'sensitive-reads',
        title: 'Sensitive columns read',
        description:
          'Statements that touched columns classified in sensitive.columns, by sensitive type, identity and identity kind, masked or not. Rows are those sent to the client.',
        controls: controlsOf('sensitiveReads'),
        statements: statementsTotal,
        maskedStatements: maskedTotal,
        unmaskedStatements: statementsTotal - maskedTotal,
        byType: [...byType.values()].map(({ ids, ...t }) => ({ ...t, identities: ids.size })),
        groups: list.map((g) => ({
          ...g,
          access: [...g.access].sort(),
          tables: [...g.tables].sort(),
          columns: [...g.columns].sort(),
          maskedColumns: [...g.maskedColumns].sort(),
          onBehalfOf: [...g.onBehalfOf].sort(),
        })),
      };
    },
  };
}
