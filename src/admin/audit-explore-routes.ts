/**
 * The audit explorer's API (members of `admin.auditors`), next to the plain search of
 * audit-routes.ts and built on the same store queries:
 *
 * - `POST /api/v1/audit/search`  `{identity, type, table, action, decision, session, since, until,
 *   text, limit, order}` — the search with a decision filter and free text (matched,
 *   case-insensitively, against each record's JSON as stored, so masked values stay masked).
 *   A POST, so that what someone searched for (it may be a value) is in no URL or access log.
 * - `POST /api/v1/audit/export`  the same body plus `format` (`jsonl` default, or `csv`): the
 *   matching records as a download (at most 10,000).
 * - `GET  /api/v1/audit/sessions/:id/replay` — a session's statements in order: text as
 *   audited, decision and rule, timing, rows and affected rows, error; its start and end.
 * - `GET  /api/v1/audit/records/:instance/:seq/chain` — where a record stands in its chain: its
 *   hash recomputed, the links to the records before and after it, and the chain from it to the
 *   next signed checkpoint verified (signature included when the key is known).
 */
import type { ReplayStatement, SessionReplay } from '../contract/admin-api.js';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { AuditLog } from '../audit/log.js';
import type { AuditQuery } from '../audit/store.js';
import { hashRecord, verifyChain, verifyCheckpointSignature, type AuditRecord } from '../audit/chain.js';
import { queryFromParams } from './audit-routes.js';

/** Records a free-text or decision search reads at most to fill its page. */
export const SEARCH_SCAN_CAP = 20_000;
export const EXPORT_CAP = 10_000;
/** Records a chain check reads at most between a record and its checkpoint. */
const CHAIN_CHECK_CAP = 50_000;

export interface SearchBody {
  identity?: string;
  type?: string | string[];
  table?: string;
  action?: string;
  decision?: string;
  session?: string;
  instance?: string;
  since?: string;
  until?: string;
  text?: string;
  limit?: number;
  order?: 'asc' | 'desc';
}

class BadRequest extends Error {}

const STRING_KEYS = ['identity', 'table', 'action', 'decision', 'session', 'instance', 'since', 'until', 'text', 'order'] as const;

function parseBody(raw: unknown, maxLimit: number): { q: AuditQuery; text?: string; decision?: string; limit: number } {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new BadRequest('expected a JSON object');
  const b = raw as Record<string, unknown>;
  const params: Record<string, string | string[] | undefined> = {};
  for (const k of STRING_KEYS) {
    const v = b[k];
    if (v === undefined || v === null || v === '') continue;
    if (typeof v !== 'string') throw new BadRequest(`${k}: expected a string`);
    params[k] = v;
  }
  if (b.type !== undefined && b.type !== '') {
    const t = b.type;
    if (typeof t === 'string') params.type = t;
    else if (Array.isArray(t) && t.every((x) => typeof x === 'string')) params.type = t as string[];
    else throw new BadRequest('type: expected a string or a list of strings');
  }
  const limit = b.limit === undefined ? 100 : b.limit;
  if (typeof limit !== 'number' || !Number.isSafeInteger(limit) || limit < 1 || limit > maxLimit) throw new BadRequest(`limit: expected an integer from 1 to ${maxLimit}`);
  const text = params.text as string | undefined;
  const decision = params.decision as string | undefined;
  delete params.text;
  delete params.decision;
  // The store filters by one action term: the decision is that term when no action is asked for.
  if (decision && !params.action) params.action = decision;
  const filtered = text !== undefined || (decision !== undefined && params.action !== decision);
  params.limit = String(filtered ? Math.min(SEARCH_SCAN_CAP, 1000) : Math.min(limit, 1000));
  let q: AuditQuery;
  try {
    q = queryFromParams(params);
  } catch (err) {
    throw new BadRequest((err as Error).message);
  }
  q.limit = filtered ? SEARCH_SCAN_CAP : limit;
  return { q, text: text?.toLowerCase(), decision: decision?.toLowerCase(), limit };
}

function decisionOf(r: AuditRecord): string | undefined {
  const d = r.data.decision;
  if (d && typeof d === 'object' && !Array.isArray(d) && typeof d.action === 'string') return d.action.toLowerCase();
  return undefined;
}

async function search(audit: AuditLog, p: ReturnType<typeof parseBody>): Promise<{ records: AuditRecord[]; scanned: number; capped: boolean }> {
  const records: AuditRecord[] = [];
  let scanned = 0;
  for await (const r of audit.store.query(p.q)) {
    scanned++;
    if (p.decision !== undefined && decisionOf(r) !== p.decision) continue;
    if (p.text !== undefined && !JSON.stringify(r).toLowerCase().includes(p.text)) continue;
    records.push(r);
    if (records.length >= p.limit) break;
  }
  return { records, scanned, capped: scanned >= (p.q.limit ?? Infinity) && records.length < p.limit };
}

const CSV_COLUMNS = ['instance', 'seq', 'ts', 'type', 'identity', 'session', 'database', 'decision', 'rule', 'tables', 'sql', 'rows', 'sqlstate', 'error', 'hash'] as const;

function csvCell(v: unknown): string {
  if (v === undefined || v === null) return '';
  let s = typeof v === 'string' ? v : JSON.stringify(v);
  // A cell a spreadsheet would run as a formula is quoted as text.
  if (/^[=+\-@\t\r]/.test(s)) s = `'${s}`;
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

function csvRow(r: AuditRecord): string {
  const d = r.data as Record<string, unknown>;
  const dec = d.decision as Record<string, unknown> | undefined;
  const cells: Record<(typeof CSV_COLUMNS)[number], unknown> = {
    instance: r.instance,
    seq: r.seq,
    ts: r.ts,
    type: r.type,
    identity: d.identity,
    session: d.session,
    database: d.database,
    decision: dec?.action,
    rule: dec?.rule,
    tables: Array.isArray(d.tables) ? d.tables.join(' ') : undefined,
    sql: d.sql,
    rows: d.rows,
    sqlstate: d.sqlstate,
    error: d.error,
    hash: r.hash,
  };
  return CSV_COLUMNS.map((c) => csvCell(cells[c])).join(',');
}

export type { ReplayStatement } from '../contract/admin-api.js';

const num = (v: unknown): number | null => (typeof v === 'number' ? v : null);
const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);

export function replayOf(records: readonly AuditRecord[]): { start: AuditRecord | null; end: AuditRecord | null; statements: ReplayStatement[]; events: AuditRecord[] } {
  const statements: ReplayStatement[] = [];
  const byBegin = new Map<string, ReplayStatement>();
  const events: AuditRecord[] = [];
  let start: AuditRecord | null = null;
  let end: AuditRecord | null = null;
  for (const r of records) {
    const d = r.data as Record<string, unknown>;
    const dec = d.decision as Record<string, unknown> | undefined;
    if (r.type === 'statement.begin' || r.type === 'statement.refused') {
      const s: ReplayStatement = {
        seq: r.seq,
        ts: r.ts,
        sql: str(d.sql),
        params: d.params ?? null,
        decision: str(dec?.action),
        rule: str(dec?.rule),
        reason: str(dec?.reason),
        refused: r.type === 'statement.refused',
        sqlstate: str(d.sqlstate),
        error: str(d.error),
        duration_ms: null,
        rows: null,
        affected: null,
        tags: null,
        ended_at: r.type === 'statement.refused' ? r.ts : null,
      };
      statements.push(s);
      byBegin.set(`${r.instance}\u0000${r.seq}`, s);
    } else if (r.type === 'statement.end') {
      const s = byBegin.get(`${r.instance}\u0000${String(d.begin_seq)}`);
      if (s) {
        s.duration_ms = num(d.duration_ms);
        s.rows = num(d.rows);
        s.affected = num(d.affected);
        s.tags = d.tags ?? null;
        s.sqlstate = str(d.sqlstate) ?? s.sqlstate;
        s.error = str(d.error) ?? s.error;
        s.ended_at = r.ts;
      }
    } else if (r.type === 'session.start') start = r;
    else if (r.type === 'session.end') end = r;
    else events.push(r);
  }
  return { start, end, statements, events };
}

function fail(reply: FastifyReply, err: unknown): FastifyReply {
  if (err instanceof BadRequest) return reply.code(400).send({ error: err.message });
  throw err;
}

export function registerAuditExploreRoutes(app: FastifyInstance, audit: AuditLog, authorize: (req: FastifyRequest, reply: FastifyReply) => Promise<void>): void {
  app.post('/audit/search', { onRequest: authorize }, async (req, reply) => {
    let p: ReturnType<typeof parseBody>;
    try {
      p = parseBody(req.body ?? {}, 1000);
    } catch (err) {
      return fail(reply, err);
    }
    const r = await search(audit, p);
    return { records: r.records, count: r.records.length, limit: p.limit, scanned: r.scanned, ...(r.capped ? { note: `stopped after reading ${r.scanned} records: narrow the search (time, identity, type) to see older matches` } : {}) };
  });

  app.post('/audit/export', { onRequest: authorize }, async (req, reply) => {
    const body = (req.body ?? {}) as Record<string, unknown>;
    const format = body.format === undefined ? 'jsonl' : body.format;
    if (format !== 'jsonl' && format !== 'csv') return reply.code(400).send({ error: 'format: expected jsonl or csv' });
    let p: ReturnType<typeof parseBody>;
    try {
      const { format: _f, ...rest } = body;
      p = parseBody({ limit: EXPORT_CAP, ...rest }, EXPORT_CAP);
    } catch (err) {
      return fail(reply, err);
    }
    const r = await search(audit, p);
    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    const text = format === 'csv' ? [CSV_COLUMNS.join(','), ...r.records.map(csvRow)].join('\r\n') + '\r\n' : r.records.map((x) => JSON.stringify(x)).join('\n') + (r.records.length ? '\n' : '');
    return reply
      .header('content-type', format === 'csv' ? 'text/csv; charset=utf-8' : 'application/x-ndjson; charset=utf-8')
      .header('content-disposition', `attachment; filename="warden-audit-${stamp}.${format}"`)
      .header('x-warden-records', String(r.records.length))
      .send(text);
  });

  app.get('/audit/sessions/:id/replay', { onRequest: authorize }, async (req, reply) => {
    const id = (req.params as { id: string }).id;
    const records: AuditRecord[] = [];
    for await (const r of audit.store.query({ session: id, descending: false, limit: 5000 })) records.push(r);
    if (records.length === 0) return reply.code(404).send({ error: `no audit records of session ${id}` });
    const rep = replayOf(records);
    const d = (rep.start?.data ?? records[0]!.data) as Record<string, unknown>;
    const replay: SessionReplay = {
      session: id,
      identity: str(d.identity),
      database: str(d.database),
      instance: records[0]!.instance,
      started_at: rep.start?.ts ?? null,
      ended_at: rep.end?.ts ?? null,
      end_reason: str((rep.end?.data as Record<string, unknown> | undefined)?.reason),
      statements: rep.statements,
      events: rep.events.map((e) => ({ seq: e.seq, ts: e.ts, type: e.type, data: e.data })),
      truncated: records.length >= 5000,
    };
    return replay;
  });

  app.get('/audit/records/:instance/:seq/chain', { onRequest: authorize }, async (req, reply) => {
    const { instance, seq: seqText } = req.params as { instance: string; seq: string };
    const seq = Number(seqText);
    if (!Number.isSafeInteger(seq) || seq < 1) return reply.code(400).send({ error: 'seq: expected a positive integer' });
    const around: AuditRecord[] = [];
    for await (const r of audit.store.query({ instance, fromSeq: Math.max(1, seq - 1), toSeq: seq + 1, descending: false })) around.push(r);
    const record = around.find((r) => r.seq === seq);
    if (!record) return reply.code(404).send({ error: `no record ${seq} in the chain of ${instance}` });
    const before = around.find((r) => r.seq === seq - 1);
    const after = around.find((r) => r.seq === seq + 1);
    const head = await audit.store.head(instance);
    const recomputed = hashRecord(record);
    const checkpoints = (await audit.store.checkpoints(instance)).filter((c) => c.seq >= seq).sort((a, b) => a.seq - b.seq);
    const cp = checkpoints[0];
    let toCheckpoint: { ok: boolean; records: number; problems: { seq: number | null; kind: string; message: string }[]; signature: 'valid' | 'invalid' | 'not checked (no public key)' } | null = null;
    if (cp && cp.seq - seq < CHAIN_CHECK_CAP) {
      const span: AuditRecord[] = [];
      for await (const r of audit.store.query({ instance, fromSeq: seq, toSeq: cp.seq, descending: false })) span.push(r);
      const rep = verifyChain(span, {
        instance,
        checkpoints: [cp],
        ...(audit.publicKey ? { publicKey: audit.publicKey } : {}),
        ...(seq > 1 ? { startAfter: { seq: seq - 1, hash: record.prev } } : {}),
      });
      toCheckpoint = {
        ok: rep.ok,
        records: rep.records,
        problems: rep.problems.slice(0, 20).map((p) => ({ seq: p.seq, kind: p.kind, message: p.message })),
        signature: audit.publicKey ? (verifyCheckpointSignature(cp, audit.publicKey) ? 'valid' : 'invalid') : 'not checked (no public key)',
      };
    }
    const linkedBefore = seq === 1 ? true : before ? before.hash === record.prev : null;
    const linkedAfter = after ? after.prev === record.hash : null;
    return {
      record,
      position: { instance, seq, head_seq: head?.seq ?? null, behind_head: head ? head.seq - seq : null },
      hash_ok: recomputed === record.hash,
      recomputed_hash: recomputed,
      previous: before ? { seq: before.seq, hash: before.hash, links: linkedBefore } : seq === 1 ? { seq: 0, hash: record.prev, links: true } : null,
      next: after ? { seq: after.seq, prev: after.prev, links: linkedAfter } : null,
      checkpoint: cp ? { seq: cp.seq, ts: cp.ts, hash: cp.hash, key_id: cp.keyId } : null,
      verified_to_checkpoint: toCheckpoint,
      ok: recomputed === record.hash && linkedBefore !== false && linkedAfter !== false && (toCheckpoint?.ok ?? true),
      note: cp
        ? cp.seq - seq >= CHAIN_CHECK_CAP
          ? `the next signed checkpoint (seq ${cp.seq}) is more than ${CHAIN_CHECK_CAP} records later: verify the whole store with warden audit verify`
          : undefined
        : 'no signed checkpoint covers this record yet (audit.signing_key and checkpoints: see docs/audit.md); its links were checked',
    };
  });
}
