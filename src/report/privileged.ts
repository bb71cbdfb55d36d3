/**
 * Privileged use: what members of the groups an operator names
 * (`report.privileged_groups`) did. A member is an identity whose groups, as
 * its latest `session.start` in the log recorded them (else as the report's
 * configuration gives them), include one of those groups.
 */
import type { AuditRecord } from '../audit/chain.js';
import { controlsOf } from './controls.js';
import { oneLine, ref, str, type Data, type StatementFacts } from './facts.js';
import { CappedList, type Aggregator, type Listing, type ReportContext, type SectionBase } from './types.js';

export interface PrivilegedIdentity {
  identity: string;
  groups: string[];
  sessions: number;
  statements: number;
  reads: number;
  writes: number;
  ddl: number;
  refused: number;
  sensitive: number;
  databases: string[];
  first: string;
  last: string;
}

export interface PrivilegedStatement {
  ts: string;
  record: string;
  identity: string;
  database: string;
  classes: string[];
  outcome: 'refused' | 'ran';
  intent: Record<string, string>;
  sql: string;
}

export interface PrivilegedSection extends SectionBase {
  id: 'privileged';
  /** report.privileged_groups of the configuration; none: the section is empty and says so. */
  groups: string[];
  identities: PrivilegedIdentity[];
  /** Their statements other than plain reads (writes, DDL, grants, settings, refused ones). */
  statements: Listing<PrivilegedStatement>;
}

interface Acc extends Omit<PrivilegedIdentity, 'databases' | 'groups'> {
  databases: Set<string>;
  groups: Set<string>;
}

export function privileged(o: { groups: readonly string[]; ctx: ReportContext; cap: number }): Aggregator<PrivilegedSection> {
  const wanted = new Set(o.groups);
  const acc = new Map<string, Acc>();
  const list = new CappedList<PrivilegedStatement>(o.cap);
  const privilegedGroups = (groups: readonly string[]): string[] => groups.filter((g) => wanted.has(g));
  const get = (identity: string, groups: string[], ts: string): Acc => {
    let a = acc.get(identity);
    if (!a) {
      a = { identity, groups: new Set(), sessions: 0, statements: 0, reads: 0, writes: 0, ddl: 0, refused: 0, sensitive: 0, databases: new Set(), first: ts, last: ts };
      acc.set(identity, a);
    }
    for (const g of groups) a.groups.add(g);
    if (ts < a.first) a.first = ts;
    if (ts > a.last) a.last = ts;
    return a;
  };
  return {
    record(r: AuditRecord) {
      if (wanted.size === 0 || r.type !== 'session.start') return;
      const d = r.data as Data;
      const identity = str(d.identity) ?? '';
      const groups = privilegedGroups(Array.isArray(d.groups) ? d.groups.filter((g): g is string => typeof g === 'string') : o.ctx.groupsOf(identity));
      if (groups.length === 0) return;
      const a = get(identity, groups, r.ts);
      a.sessions++;
      const db = str(d.database);
      if (db) a.databases.add(db);
    },
    statement(f: StatementFacts) {
      if (wanted.size === 0) return;
      const groups = privilegedGroups(o.ctx.groupsOf(f.identity));
      if (groups.length === 0) return;
      const a = get(f.identity, groups, f.ts);
      a.statements++;
      a.databases.add(f.database);
      const refused = f.type === 'statement.refused';
      if (refused) a.refused++;
      const read = f.classes.includes('read');
      if (read) a.reads++;
      if (f.classes.includes('write')) a.writes++;
      if (f.classes.includes('ddl') || f.classes.includes('drop')) a.ddl++;
      if (f.sensitive.length > 0) a.sensitive++;
      const plainRead = f.classes.every((c) => c === 'read' || c === 'select' || c === 'transaction' || c === 'explain');
      if (refused || !plainRead) {
        list.push({ ts: f.ts, record: ref(f), identity: f.identity, database: f.database, classes: f.classes, outcome: refused ? 'refused' : 'ran', intent: f.intent, sql: oneLine(f.sql, 1000) });
      }
    },
    finish() {
      return {
        id: 'privileged',
        title: 'Privileged use',
        description:
          wanted.size === 0
            ? 'No privileged groups are named (report.privileged_groups in the configuration), so this section lists nothing.'
            : `What members of ${[...wanted].join(', ')} (report.privileged_groups) did: per identity, and each statement other than a plain read.`,
        controls: controlsOf('privileged'),
        groups: [...wanted],
        identities: [...acc.values()].map((a) => ({ ...a, groups: [...a.groups].sort(), databases: [...a.databases].sort() })).sort((a, b) => a.identity.localeCompare(b.identity, 'en', { numeric: true })),
        statements: list.toJSON(),
      };
    },
  };
}
