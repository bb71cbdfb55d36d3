/**
 * Live statistics for the web console's overview (and anyone with the API):
 *
 * - `GET /api/v1/stats`         one snapshot (JSON);
 * - `GET /api/v1/stats/stream`  the same as server-sent events (`event: stats`), one per
 *                               `interval` seconds (1–10, default 1), with the statements per
 *                               second by decision since the previous event.
 *
 * A snapshot: statements since start by decision — allowed, masked, refused, held (for an
 * approval), halted (a limit crossed) — active sessions and connections by state, pending
 * approvals (in the state store: every instance's), audit health and the chain's head and
 * latest signed checkpoint, and, for members of `admin.auditors` or `admin.operators`, the
 * identities and tables with the most statements in the last five minutes (from the audit
 * log, the same search `GET /api/v1/audit/records` does). Readers: the console's groups,
 * operators and auditors.
 */
import type { DecisionName, StatsEvent, StatsSnapshot } from '../contract/admin-api.js';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { WardenConfig } from '../config/types.js';
import type { AuditLog } from '../audit/log.js';
import type { ApprovalService } from '../governance/approvals.js';
import type { StatementCounts } from './metrics.js';
import { inAny, readerGroups, requireGroups } from '../console/access.js';

export interface StatsSources {
  config(): WardenConfig;
  sessions(): number;
  connections?(): Readonly<Record<string, number>>;
  statements(): { decided: number; refused: number };
  limitsExceeded?(): ReadonlyMap<string, number>;
  counts?: StatementCounts;
  approvals?: ApprovalService;
  audit?: AuditLog;
  /** Whether a stream's caller may still read it (logged out, suspended, removed: the stream ends). */
  stillAuthorized?(req: FastifyRequest): boolean;
}

export const DECISIONS: readonly DecisionName[] = ['allowed', 'masked', 'refused', 'held', 'halted'];
export type { DecisionName };

export type { StatsSnapshot } from '../contract/admin-api.js';

/** Records the top lists look at, at most (newest first). */
const TOP_SCAN = 5000;
const TOP_WINDOW_MS = 5 * 60_000;
/**
 * The top lists and the checkpoint are read again at most this often, whoever asks: every few
 * seconds from a store with a search index (sqlite, postgres: a time-range read), less often
 * from a jsonl file, which a search scans whole.
 */
const SLOW_EVERY_MS = 3000;
const SLOW_EVERY_SCANNED_MS = 30_000;
/** Streams one identity may hold open at once (a page each; more is a leak or abuse): 429 beyond. */
export const MAX_STREAMS_PER_IDENTITY = 8;

function totalsOf(s: StatsSources): Record<DecisionName, number> {
  const by: Record<string, number> = {};
  for (const x of s.counts?.samples() ?? []) by[x.labels.action!] = (by[x.labels.action!] ?? 0) + x.value;
  let halted = 0;
  for (const v of s.limitsExceeded?.().values() ?? []) halted += v;
  return { allowed: by.allow ?? 0, masked: by.mask ?? 0, refused: s.statements().refused, held: by.approve ?? 0, halted };
}

type Top = NonNullable<StatsSnapshot['top']>;

export function registerStatsRoutes(app: FastifyInstance, s: StatsSources): void {
  const readers = requireGroups(() => readerGroups(s.config()), 'the live statistics', 'admin.console.groups, admin.operators or admin.auditors');
  const mayReadAudit = (req: FastifyRequest): boolean => {
    const a = s.config().admin;
    return inAny(req.identity!, [...(a?.auditors ?? []), ...(a?.operators ?? [])]);
  };

  let slow: { at: number; top: Top | null; checkpoint: { seq: number; ts: string } | null; pending: number | null } | undefined;
  let reading: Promise<void> | undefined;
  const readSlow = async (): Promise<void> => {
    let top: Top | null = null;
    let checkpoint: { seq: number; ts: string } | null = null;
    let pending: number | null = null;
    const audit = s.audit;
    if (audit) {
      const identities = new Map<string, number>();
      const tables = new Map<string, number>();
      let scanned = 0;
      try {
        const since = new Date(Date.now() - TOP_WINDOW_MS).toISOString();
        for await (const r of audit.store.query({ types: ['statement.begin', 'statement.refused'], since, descending: true, limit: TOP_SCAN })) {
          scanned++;
          const id = typeof r.data.identity === 'string' ? r.data.identity : undefined;
          if (id) identities.set(id, (identities.get(id) ?? 0) + 1);
          if (Array.isArray(r.data.tables)) for (const t of r.data.tables) if (typeof t === 'string') tables.set(t, (tables.get(t) ?? 0) + 1);
        }
        const best = (m: Map<string, number>): { name: string; statements: number }[] =>
          [...m].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).slice(0, 8).map(([name, statements]) => ({ name, statements }));
        top = { window_s: TOP_WINDOW_MS / 1000, identities: best(identities), tables: best(tables), scanned };
      } catch {
        top = null;
      }
      try {
        const cps = await audit.store.checkpoints(audit.instance);
        const last = cps.reduce<(typeof cps)[number] | undefined>((a, b) => (!a || b.seq > a.seq ? b : a), undefined);
        checkpoint = last ? { seq: last.seq, ts: last.ts } : null;
      } catch {
        checkpoint = null;
      }
    }
    if (s.approvals) pending = (await s.approvals.list({ status: 'pending', limit: 1000 }).catch(() => [])).length;
    slow = { at: Date.now(), top, checkpoint, pending };
  };
  const refresh = async (): Promise<NonNullable<typeof slow>> => {
    const every = s.audit && !s.audit.store.indexEntries ? SLOW_EVERY_SCANNED_MS : SLOW_EVERY_MS;
    if (!slow || Date.now() - slow.at >= every) {
      reading ??= readSlow().finally(() => (reading = undefined));
      await reading;
    }
    return slow!;
  };

  const snapshot = async (req: FastifyRequest): Promise<StatsSnapshot> => {
    const sl = await refresh();
    const audit = s.audit;
    return {
      at: new Date().toISOString(),
      totals: totalsOf(s),
      sessions: s.sessions(),
      connections: s.connections?.() ?? null,
      approvals_pending: sl.pending,
      audit: audit
        ? {
            store: audit.store.description,
            instance: audit.instance,
            healthy: audit.stats.healthy,
            backlog: audit.stats.backlog,
            written: audit.stats.written,
            failures: audit.stats.failures,
            lost: audit.stats.lost,
            head: { seq: audit.head.seq, hash: audit.head.hash },
            last_checkpoint: sl.checkpoint,
          }
        : null,
      top: mayReadAudit(req) ? sl.top : null,
    };
  };

  app.get('/stats', { preHandler: readers }, async (req) => snapshot(req));

  // Open streams end when the listener closes (they would hold its close() otherwise).
  const streams = new Set<() => void>();
  const open = new Map<string, number>();
  app.addHook('preClose', async () => {
    for (const end of [...streams]) end();
  });

  app.get('/stats/stream', { preHandler: readers }, async (req, reply) => {
    const q = req.query as { interval?: string };
    const interval = q.interval === undefined ? 1 : Number(q.interval);
    if (!Number.isInteger(interval) || interval < 1 || interval > 10) return reply.code(400).send({ error: 'interval: expected whole seconds from 1 to 10' });
    const who = req.identity!.name;
    if ((open.get(who) ?? 0) >= MAX_STREAMS_PER_IDENTITY) {
      return reply.code(429).header('retry-after', '10').send({ error: `${who} has ${MAX_STREAMS_PER_IDENTITY} statistics streams open already: close a console tab` });
    }
    open.set(who, (open.get(who) ?? 0) + 1);
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
      connection: 'keep-alive',
    });
    let prev: { at: number; totals: Record<DecisionName, number> } | undefined;
    let closed = false;
    let timer: NodeJS.Timeout | undefined;
    const end = (): void => {
      if (closed) return;
      closed = true;
      if (timer) clearTimeout(timer);
      streams.delete(end);
      const n = (open.get(who) ?? 1) - 1;
      if (n > 0) open.set(who, n);
      else open.delete(who);
      res.end();
    };
    streams.add(end);
    const send = async (): Promise<void> => {
      if (closed) return;
      if (s.stillAuthorized && !s.stillAuthorized(req)) {
        res.write(`event: ended\ndata: ${JSON.stringify({ error: 'no longer authorized (logged out, session expired or identity suspended)' })}\n\n`);
        return end();
      }
      try {
        const snap = await snapshot(req);
        const now = Date.now();
        const rates = {} as Record<DecisionName, number>;
        for (const d of DECISIONS) rates[d] = prev ? Math.max(0, (snap.totals[d] - prev.totals[d]) / ((now - prev.at) / 1000 || 1)) : 0;
        prev = { at: now, totals: snap.totals };
        if (!closed) res.write(`event: stats\ndata: ${JSON.stringify({ ...snap, per_second: rates } satisfies StatsEvent)}\n\n`);
      } catch (err) {
        if (!closed) res.write(`event: error\ndata: ${JSON.stringify({ error: (err as Error).message })}\n\n`);
      }
      if (!closed) timer = setTimeout(() => void send(), interval * 1000);
    };
    res.on('close', end);
    res.write(`retry: 3000\n\n`);
    await send();
  });
}
