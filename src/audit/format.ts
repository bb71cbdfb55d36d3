/** Human-readable and CSV renderings of audit records (CLI tail / search / export). */
import type { AuditRecord } from './chain.js';

function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

function oneLine(s: string, max = 160): string {
  const flat = s.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

/** What the record says, in a few words. */
export function summarize(r: AuditRecord): string {
  const d = r.data as Record<string, unknown>;
  const decision = d.decision as { action?: string; rule?: string } | undefined;
  switch (r.type) {
    case 'statement.begin':
      return `${decision?.action ?? ''} ${oneLine(str(d.sql) ?? '')}`.trim();
    case 'statement.refused':
      return `${str(d.sqlstate) ?? ''} ${decision?.rule ? `[${decision.rule}] ` : ''}${oneLine(str(d.sql) ?? '')}`.trim();
    case 'statement.end': {
      const parts = [`#${String(d.begin_seq)}`];
      if (Array.isArray(d.tags) && d.tags.length > 0) parts.push(d.tags.join(', '));
      if (typeof d.rows === 'number' && d.rows > 0) parts.push(`${d.rows} rows`);
      if (typeof d.duration_ms === 'number') parts.push(`${d.duration_ms.toFixed(1)} ms`);
      if (d.sqlstate) parts.push(`error ${String(d.sqlstate)}: ${oneLine(str(d.error) ?? '', 80)}`);
      return parts.join('  ');
    }
    case 'session.start':
      return `${str(d.database) ?? ''} from ${str(d.client_address) ?? '?'}${d.tls ? ' (tls)' : ''}${d.application_name ? ` app=${String(d.application_name)}` : ''}`;
    case 'session.end':
      return `${str(d.reason) ?? ''} after ${String(d.statements ?? 0)} statements`;
    case 'login.failed':
      return `${str(d.reason) ?? ''} from ${str(d.client_address) ?? '?'}`;
    case 'schema.change': {
      const objects = (d.objects ?? {}) as Record<string, { changes?: string[] }>;
      return Object.entries(objects)
        .map(([name, o]) => `${name}: ${(o.changes ?? []).join('; ') || 'no change'}`)
        .join(' | ');
    }
    default:
      return oneLine(JSON.stringify(d), 120);
  }
}

/** `ts  instance#seq  type  identity  summary` */
export function formatRecordLine(r: AuditRecord): string {
  const d = r.data as Record<string, unknown>;
  return [r.ts, `${r.instance}#${r.seq}`, r.type.padEnd(17), (str(d.identity) ?? '-').padEnd(12), summarize(r)].join('  ');
}

export const CSV_COLUMNS = ['ts', 'instance', 'seq', 'type', 'identity', 'session', 'database', 'action', 'rule', 'tables', 'sql', 'rows', 'sqlstate', 'hash', 'data'] as const;

function csvCell(v: unknown): string {
  if (v === undefined || v === null) return '';
  const s = typeof v === 'string' ? v : typeof v === 'number' || typeof v === 'boolean' ? String(v) : JSON.stringify(v);
  // Quote always-safe; neutralize spreadsheet formulas.
  const safe = /^[=+\-@\t\r]/.test(s) ? `'${s}` : s;
  return `"${safe.replace(/"/g, '""')}"`;
}

export function csvHeader(): string {
  return CSV_COLUMNS.join(',');
}

export function toCsvRow(r: AuditRecord): string {
  const d = r.data as Record<string, unknown>;
  const decision = d.decision as { action?: string; rule?: string } | undefined;
  const cells: unknown[] = [
    r.ts,
    r.instance,
    r.seq,
    r.type,
    d.identity,
    d.session,
    d.database,
    decision?.action,
    decision?.rule,
    Array.isArray(d.tables) ? d.tables.join(' ') : undefined,
    d.sql,
    d.rows,
    d.sqlstate,
    r.hash,
    r.data,
  ];
  return cells.map(csvCell).join(',');
}
