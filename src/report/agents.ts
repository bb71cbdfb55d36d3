/**
 * Access by AI agents (identities of kind `agent`) and by anyone acting for
 * someone else (`on_behalf_of`: a token's --on-behalf-of, an OIDC act claim):
 * what they ran, on whose behalf, refused or not, sensitive or not.
 */
import type { AuditRecord } from '../audit/chain.js';
import { controlsOf } from './controls.js';
import { str, type Data, type StatementFacts } from './facts.js';
import type { Aggregator, SectionBase } from './types.js';

export interface AgentAccess {
  identity: string;
  kind: string;
  onBehalfOf: string;
  database: string;
  sessions: number;
  statements: number;
  refused: number;
  reads: number;
  writes: number;
  ddl: number;
  sensitive: number;
  masked: number;
  tables: string[];
  /** True when more tables were touched than `tables` lists. */
  moreTables: boolean;
  first: string;
  last: string;
}

export interface AgentsSection extends SectionBase {
  id: 'agents';
  agents: number;
  statements: number;
  refused: number;
  onBehalfOfSomeone: number;
  access: AgentAccess[];
}

const MAX_TABLES = 40;

interface Acc extends Omit<AgentAccess, 'tables' | 'moreTables'> {
  tables: Set<string>;
  moreTables: boolean;
}

export function agents(): Aggregator<AgentsSection> {
  const acc = new Map<string, Acc>();
  const get = (identity: string, kind: string, onBehalfOf: string, database: string, ts: string): Acc => {
    const key = `${identity}\u0000${onBehalfOf}\u0000${database}`;
    let a = acc.get(key);
    if (!a) {
      a = { identity, kind, onBehalfOf, database, sessions: 0, statements: 0, refused: 0, reads: 0, writes: 0, ddl: 0, sensitive: 0, masked: 0, tables: new Set(), moreTables: false, first: ts, last: ts };
      acc.set(key, a);
    }
    if (ts < a.first) a.first = ts;
    if (ts > a.last) a.last = ts;
    return a;
  };
  const concerns = (kind: string, onBehalfOf: string | undefined): boolean => kind === 'agent' || onBehalfOf !== undefined;
  return {
    statement(f: StatementFacts) {
      if (!concerns(f.kind, f.onBehalfOf)) return;
      const a = get(f.identity, f.kind, f.onBehalfOf ?? '', f.database, f.ts);
      a.statements++;
      if (f.type === 'statement.refused') a.refused++;
      if (f.classes.includes('read')) a.reads++;
      if (f.classes.includes('write')) a.writes++;
      if (f.classes.includes('ddl') || f.classes.includes('drop')) a.ddl++;
      if (f.sensitive.length > 0) a.sensitive++;
      if (f.action === 'mask') a.masked++;
      for (const t of f.tables) {
        if (a.tables.has(t)) continue;
        if (a.tables.size >= MAX_TABLES) a.moreTables = true;
        else a.tables.add(t.replace(/"/g, ''));
      }
    },
    record(r: AuditRecord) {
      if (r.type !== 'session.start') return;
      const d = r.data as Data;
      const kind = str(d.kind) ?? '';
      const obo = str(d.on_behalf_of);
      if (!concerns(kind, obo)) return;
      get(str(d.identity) ?? '', kind, obo ?? '', str(d.database) ?? '', r.ts).sessions++;
    },
    finish() {
      const access = [...acc.values()]
        .map((a) => ({ ...a, tables: [...a.tables].sort() }))
        .sort((a, b) => a.identity.localeCompare(b.identity, 'en', { numeric: true }) || a.onBehalfOf.localeCompare(b.onBehalfOf, 'en', { numeric: true }) || a.database.localeCompare(b.database, 'en', { numeric: true }));
      return {
        id: 'agents',
        title: 'AI agents and access on behalf of others',
        description: 'Statements by identities of kind agent, and by any identity acting for a person (on_behalf_of), grouped by identity, the person and the database.',
        controls: controlsOf('agents'),
        agents: new Set(access.filter((a) => a.kind === 'agent').map((a) => a.identity)).size,
        statements: access.reduce((n, a) => n + a.statements, 0),
        refused: access.reduce((n, a) => n + a.refused, 0),
        onBehalfOfSomeone: access.filter((a) => a.onBehalfOf !== '').reduce((n, a) => n + a.statements, 0),
        access,
      };
    },
  };
}
