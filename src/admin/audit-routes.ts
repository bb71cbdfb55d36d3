/**
 * Audit API (read-only) on the admin listener, for auditors and the coming
 * web console:
 *
 * - `GET /api/v1/audit/records` — search: `identity`, `table`, `action`, `type`
 *   (repeatable), `session`, `instance`, `since`, `until` (ISO-8601 or a
 *   duration ago: `2h`), `limit` (default 100, at most 1000), `order`
 *   (`desc` default, newest first, or `asc`), `after_seq` with `instance` for paging.
 * - `GET /api/v1/audit/checkpoints` — the signed checkpoints (to keep elsewhere).
 * - `GET /api/v1/audit/verify` — verify this store's chains now, against the
 *   stored checkpoints and those of the readable witnesses (`audit.witness`:
 *   file, postgres); `witness=false` skips the witnesses.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { AuditLog } from '../audit/log.js';
import type { AuditQuery } from '../audit/store.js';
import type { AuditRecord, Checkpoint } from '../audit/chain.js';
import { verifyStore } from '../audit/verify-store.js';
import { witnessedCheckpoints, witnessesOf, type WitnessReading } from '../audit/witness.js';
import { parseDuration } from '../config/schema.js';

const MAX_LIMIT = 1000;

class BadRequest extends Error {}

function time(v: string, name: string): string {
  const d = parseDuration(v);
  if (d.ok && !/^\d{4}-/.test(v)) return new Date(Date.now() - d.value).toISOString();
  const t = new Date(v);
  if (Number.isNaN(t.getTime())) throw new BadRequest(`${name}: "${v}" is neither an ISO-8601 time nor a duration (30m, 2h, 7d)`);
  return t.toISOString();
}

export function queryFromParams(p: Record<string, string | string[] | undefined>): AuditQuery {
  const one = (k: string): string | undefined => {
    const v = p[k];
    return Array.isArray(v) ? v[0] : v;
  };
  const q: AuditQuery = {};
  for (const k of ['identity', 'table', 'action', 'session', 'instance'] as const) {
    const v = one(k);
    if (v !== undefined && v !== '') q[k] = v;
  }
  const types = p.type;
  if (types !== undefined) q.types = (Array.isArray(types) ? types : [types]).filter((t) => t !== '');
  const since = one('since');
  const until = one('until');
  if (since) q.since = time(since, 'since');
  if (until) q.until = time(until, 'until');
  const limit = one('limit');
  const n = limit === undefined ? 100 : Number(limit);
  if (!Number.isSafeInteger(n) || n < 1 || n > MAX_LIMIT) throw new BadRequest(`limit: expected an integer from 1 to ${MAX_LIMIT}`);
  q.limit = n;
  const order = one('order') ?? 'desc';
  if (order !== 'asc' && order !== 'desc') throw new BadRequest('order: expected asc or desc');
  q.descending = order === 'desc';
  const after = one('after_seq');
  if (after !== undefined) {
    const s = Number(after);
    if (!Number.isSafeInteger(s) || s < 0) throw new BadRequest('after_seq: expected a non-negative integer');
    if (q.instance === undefined) throw new BadRequest('after_seq needs instance (seqs are per instance)');
    if (q.descending) q.toSeq = s - 1;
    else q.fromSeq = s + 1;
  }
  return q;
}

export function registerAuditRoutes(app: FastifyInstance, audit: AuditLog, authorize: (req: FastifyRequest, reply: FastifyReply) => Promise<void>): void {
  app.get('/audit/records', { onRequest: authorize }, async (req, reply) => {
    let q: AuditQuery;
    try {
      q = queryFromParams(req.query as Record<string, string | string[] | undefined>);
    } catch (err) {
      if (err instanceof BadRequest) return reply.code(400).send({ error: err.message });
      throw err;
    }
    const records: AuditRecord[] = [];
    for await (const r of audit.store.query(q)) records.push(r);
    return { records, count: records.length, limit: q.limit };
  });
  app.get('/audit/checkpoints', { onRequest: authorize }, async () => ({ checkpoints: await audit.store.checkpoints() }));
  app.get('/audit/verify', { onRequest: authorize }, async (req) => {
    const skip = (req.query as Record<string, unknown>).witness === 'false';
    const readable = skip ? [] : (witnessesOf(audit.store)?.readable ?? []);
    let witnessed: Checkpoint[] = [];
    let witnesses: WitnessReading[] = [];
    if (readable.length > 0) ({ checkpoints: witnessed, readings: witnesses } = await witnessedCheckpoints(audit.store, readable, { ownInstance: audit.instance }));
    const results = (await verifyStore(audit.store, { publicKey: audit.publicKey, checkpoints: witnessed })).map(({ instance, report, checkpoints, startAfter, index }) => ({
      instance,
      ok: report.ok,
      records: report.records,
      lastSeq: report.lastSeq,
      checkpoints,
      startAfter,
      index,
      problems: report.problems.slice(0, 100),
    }));
    return { ok: results.every((r) => r.ok) && witnesses.every((w) => w.error === undefined), store: audit.store.description, witnesses, instances: results };
  });
}
