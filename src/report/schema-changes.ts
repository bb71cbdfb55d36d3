/**
 * Every schema change (`schema.change`): the objects with their definitions
 * before and after and the short list of changes, who made it, on which
 * database, with the statement and the intent of its `statement.begin`
 * (`statement_seq`).
 */
import type { AuditRecord } from '../audit/chain.js';
import { controlsOf } from './controls.js';
import { num, obj, oneLine, ref, str, strings, type Data } from './facts.js';
import { CappedList, type Aggregator, type Listing, type ReportContext, type SectionBase } from './types.js';

export interface SchemaObjectChange {
  object: string;
  changes: string[];
  before: unknown;
  after: unknown;
}

export interface SchemaChange {
  ts: string;
  record: string;
  identity: string;
  kind: string;
  database: string;
  statementRecord: string;
  sql: string;
  intent: Record<string, string>;
  objects: SchemaObjectChange[];
  error?: string;
}

export interface SchemaChangesSection extends SectionBase {
  id: 'schema-changes';
  total: number;
  objects: number;
  byIdentity: { key: string; count: number }[];
  changes: Listing<SchemaChange>;
}

export function schemaChanges(o: { ctx: ReportContext; cap: number }): Aggregator<SchemaChangesSection> {
  const list = new CappedList<SchemaChange>(o.cap);
  const byIdentity = new Map<string, number>();
  let objects = 0;
  return {
    record(r: AuditRecord) {
      if (r.type !== 'schema.change') return;
      const d = r.data as Data;
      const seq = num(d.statement_seq);
      const st = seq !== undefined ? o.ctx.statementAt(r.instance, seq) : undefined;
      const objs: SchemaObjectChange[] = [];
      for (const [name, v] of Object.entries(obj(d.objects) ?? {})) {
        const ov = obj(v);
        objs.push({ object: name, changes: strings(ov?.changes), before: ov?.before ?? null, after: ov?.after ?? null });
      }
      objects += objs.length;
      const identity = str(d.identity) ?? '';
      byIdentity.set(identity, (byIdentity.get(identity) ?? 0) + 1);
      list.push({
        ts: r.ts,
        record: ref(r),
        identity,
        kind: str(d.kind) ?? '',
        database: str(d.database) ?? '',
        statementRecord: seq !== undefined ? `${r.instance}#${seq}` : '',
        sql: st ? oneLine(st.sql, 4000) : '',
        intent: st?.intent ?? {},
        objects: objs,
        ...(str(d.error) ? { error: str(d.error) } : {}),
      });
    },
    finish() {
      return {
        id: 'schema-changes',
        title: 'Schema changes',
        description: 'Every DDL statement\'s effect on the catalog, read before and after it ran: the objects, their definitions, the changes, who made them, the statement and the intent given.',
        controls: controlsOf('schemaChanges'),
        total: list.total,
        objects,
        byIdentity: [...byIdentity.entries()].map(([key, count]) => ({ key, count })).sort((a, b) => b.count - a.count),
        changes: list.toJSON(),
      };
    },
  };
}
