/**
 * Reading the fields of audit records (docs/audit.md#events) without trusting
 * their shape: a record's data is any JSON object, and a report must neither
 * throw on an odd record nor count a field that is not what it claims to be.
 */
import type { AuditRecord } from '../audit/chain.js';

export type Data = Record<string, unknown>;

export function str(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

export function num(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

export function strings(v: unknown): string[] {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string' && x !== '') : [];
}

export function obj(v: unknown): Data | undefined {
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Data) : undefined;
}

/** Intent values (ticket, reason, job, ...) as recorded: string members only. */
export function intentOf(v: unknown): Record<string, string> {
  const o = obj(v);
  const out: Record<string, string> = {};
  if (!o) return out;
  for (const [k, x] of Object.entries(o)) if (typeof x === 'string' && x !== '') out[k] = x;
  return out;
}

/** Whether an intent names a ticket or a reason (what `match.intent: true` asks for). */
export function hasIntent(intent: Readonly<Record<string, string>>): boolean {
  return (intent.ticket ?? '').trim() !== '' || (intent.reason ?? '').trim() !== '';
}

/** The facts of a `statement.begin` / `statement.refused` record. */
export interface StatementFacts {
  instance: string;
  seq: number;
  ts: string;
  type: 'statement.begin' | 'statement.refused';
  session: string;
  identity: string;
  kind: string;
  onBehalfOf?: string;
  database: string;
  environment?: string;
  protocol?: string;
  sql: string;
  params?: unknown[];
  statementName?: string;
  intent: Record<string, string>;
  action?: string;
  rule?: string;
  reason?: string;
  matched: { rule: string; action: string }[];
  sensitive: string[];
  tables: string[];
  reads: string[];
  writes: string[];
  classes: string[];
  kinds: string[];
  parseError?: string;
  sqlstate?: string;
  error?: string;
  refusedWhile?: string;
}

export function isStatement(r: AuditRecord): boolean {
  return r.type === 'statement.begin' || r.type === 'statement.refused';
}

export function statementFacts(r: AuditRecord): StatementFacts {
  const d = r.data as Data;
  const decision = obj(d.decision);
  const matched: { rule: string; action: string }[] = [];
  if (decision && Array.isArray(decision.matched)) {
    for (const m of decision.matched) {
      const mo = obj(m);
      const rule = str(mo?.rule);
      const action = str(mo?.action);
      if (rule && action) matched.push({ rule, action });
    }
  }
  return {
    instance: r.instance,
    seq: r.seq,
    ts: r.ts,
    type: r.type === 'statement.refused' ? 'statement.refused' : 'statement.begin',
    session: str(d.session) ?? '',
    identity: str(d.identity) ?? '',
    kind: str(d.kind) ?? '',
    onBehalfOf: str(d.on_behalf_of),
    database: str(d.database) ?? '',
    environment: str(d.environment),
    protocol: str(d.protocol),
    sql: typeof d.sql === 'string' ? d.sql : '',
    params: Array.isArray(d.params) ? d.params : undefined,
    statementName: str(d.statement_name),
    intent: intentOf(d.intent),
    action: str(decision?.action),
    rule: str(decision?.rule),
    reason: str(decision?.reason),
    matched,
    sensitive: strings(d.sensitive),
    tables: strings(d.tables),
    reads: strings(d.reads),
    writes: strings(d.writes),
    classes: strings(d.classes),
    kinds: strings(d.kinds),
    parseError: str(d.parse_error),
    sqlstate: str(d.sqlstate),
    error: str(d.error),
    refusedWhile: str(d.refused_while),
  };
}

/** The facts of a `statement.end` record. */
export interface EndFacts {
  beginSeq: number;
  ts: string;
  rows: number;
  affected?: number;
  durationMs?: number;
  sqlstate?: string;
  error?: string;
  masked: string[];
}

export function endFacts(r: AuditRecord): EndFacts | undefined {
  const d = r.data as Data;
  const beginSeq = num(d.begin_seq);
  if (beginSeq === undefined) return undefined;
  return {
    beginSeq,
    ts: r.ts,
    rows: num(d.rows) ?? 0,
    affected: num(d.affected),
    durationMs: num(d.duration_ms),
    sqlstate: str(d.sqlstate),
    error: str(d.error),
    masked: strings(d.masked),
  };
}

/** One line of statement text for a table cell: white space folded, capped. */
export function oneLine(s: string, max = 400): string {
  const flat = s.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

/** A compact reference to a record: `instance#seq`. */
export function ref(r: { instance: string; seq: number }): string {
  return `${r.instance}#${r.seq}`;
}
