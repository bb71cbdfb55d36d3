/**
 * Limit counters shared through the state store (issue 20; docs/limits-counters.md): the
 * minute and hour counts behind `statements_per_minute` and `rows_per_hour`, held by every
 * Warden instance using the store, and kept across restarts and reloads.
 *
 * - `get` and `add` run per statement: a Map lookup each, never a query. A count is the
 *   store's total as last read, plus what this instance added since (not yet written, or
 *   being written).
 * - Every {@link DEFAULT_SYNC_MS} (and on close) the additions are written as atomic
 *   increments and the totals of the current windows read back, in one store transaction
 *   ({@link StateStore.syncLimitCounts}); windows older than {@link KEEP_MS} are deleted.
 *   One exchange at a time: an addition is counted once, either as "not yet written" or in
 *   the total read after it was written.
 * - When the store cannot be written or read, counting goes on locally (the additions wait,
 *   and count, until a write succeeds); a warning is logged once, and the exchange retried
 *   at the same cadence. No statement ever waits for the store.
 * - `start()` reads once: Warden awaits it before its first statement, so a restarted
 *   instance starts from the stored counts.
 *
 * What it costs: instances may overshoot a limit by what the others counted in the last
 * exchange interval or two (each instance bounds its own statements exactly).
 *
 * @module
 */
import type { Logger } from '../log/logger.js';
import type { LimitCount, LimitCountKind, StateStore } from '../store/types.js';
import type { LimitCounters } from './limits.js';

/** How often the counts are written and read back (ms). */
export const DEFAULT_SYNC_MS = 500;
/** Windows that started longer ago than this are deleted from the store (ms). */
export const KEEP_MS = 2 * 3_600_000;
/** The windows of each kind, as limits.ts counts them: statements per minute, rows per hour. */
export const WINDOW_MS: Readonly<Record<LimitCountKind, number>> = { statements: 60_000, rows: 3_600_000 };
/** How often old windows are deleted (ms). */
const PRUNE_EVERY_MS = 60_000;
/** Longest wait for the store on start and on close (ms): a store that hangs never holds Warden. */
const WAIT_MS = 5_000;

export interface StoreLimitCounters extends LimitCounters {
  /** Read the stored counts once (Warden awaits it before its first statement); never rejects. */
  start(): Promise<void>;
  /** One exchange now (tests); never rejects. */
  sync(): Promise<void>;
  /** Whether the last exchange with the store failed (counting locally). */
  readonly failing: boolean;
  /** Stop the exchanges after writing what was added (waits at most a few seconds). */
  close(): Promise<void>;
}

export interface StoreLimitCountersOptions {
  readonly store: StateStore;
  readonly log: Logger;
  readonly syncMs?: number;
  /** The clock (tests). */
  readonly now?: () => number;
}

/** One (kind, limit, identity, window). */
interface Cell {
  readonly kind: LimitCountKind;
  readonly limit: string;
  readonly identity: string;
  readonly window: number;
  /** The store's total as last read (with what this instance wrote since). */
  base: number;
  /** Added here, not yet written. */
  pending: number;
  /** Being written by the exchange in flight. */
  writing: number;
}

/** The cells of one (kind, limit, identity), one per window: usually one, two as a window turns. */
const keyOf = (kind: LimitCountKind, limit: string, identity: string): string => `${kind}\u0000${limit}\u0000${identity}`;

function find(list: readonly Cell[] | undefined, window: number): Cell | undefined {
  if (list === undefined) return undefined;
  for (let i = 0; i < list.length; i++) if (list[i]!.window === window) return list[i];
  return undefined;
}

const sleep = (ms: number): Promise<void> =>
  new Promise((r) => {
    setTimeout(r, ms).unref();
  });

export function createStoreLimitCounters(o: StoreLimitCountersOptions): StoreLimitCounters {
  const { store, log } = o;
  const syncMs = o.syncMs ?? DEFAULT_SYNC_MS;
  const now = o.now ?? Date.now;
  const cells = new Map<string, Cell[]>();
  let failing = false;
  let closed = false;
  let started = false;
  let lastPrune = 0;
  let running: Promise<void> | null = null;
  let timer: NodeJS.Timeout | undefined;

  const cellOf = (kind: LimitCountKind, limit: string, identity: string, window: number): Cell => {
    const key = keyOf(kind, limit, identity);
    let list = cells.get(key);
    let c = find(list, window);
    if (c === undefined) {
      c = { kind, limit, identity, window, base: 0, pending: 0, writing: 0 };
      if (list === undefined) cells.set(key, (list = []));
      list.push(c);
    }
    return c;
  };

  const exchange = async (): Promise<void> => {
    const t = now();
    const since: Record<LimitCountKind, number> = { statements: t - (t % WINDOW_MS.statements), rows: t - (t % WINDOW_MS.rows) };
    const written: Cell[] = [];
    const adds: LimitCount[] = [];
    for (const list of cells.values()) {
      for (const c of list) {
        if (c.pending === 0) continue;
        c.writing = c.pending;
        c.pending = 0;
        written.push(c);
        adds.push({ kind: c.kind, limit: c.limit, identity: c.identity, window: c.window, count: c.writing });
      }
    }
    const prune = t - lastPrune >= PRUNE_EVERY_MS ? t - KEEP_MS : undefined;
    let totals: LimitCount[];
    try {
      totals = await store.syncLimitCounts(adds, since, prune);
    } catch (err) {
      // Nothing was added: the additions wait (and count) for the next exchange.
      for (const c of written) {
        c.pending += c.writing;
        c.writing = 0;
      }
      // Past windows with nothing to write are dropped meanwhile (the map stays small).
      for (const [key, list] of cells) {
        const keep = list.filter((c) => c.pending > 0 || c.window >= since[c.kind]);
        if (keep.length === 0) cells.delete(key);
        else if (keep.length !== list.length) cells.set(key, keep);
      }
      if (!failing && !closed) {
        log.warn(
          { store: store.description, err: (err as Error).message, retryMs: syncMs },
          'limit counters: the state store cannot be written or read; counting goes on in this instance only (not shared) until it can',
        );
      }
      failing = true;
      return;
    }
    if (failing) log.info({ store: store.description }, 'limit counters: the state store is reachable again; counts are shared again');
    failing = false;
    if (prune !== undefined) lastPrune = t;
    // Written: in the store now, and in the totals read after the write (same transaction).
    for (const c of written) {
      c.base += c.writing;
      c.writing = 0;
    }
    const seen = new Set<Cell>();
    for (const r of totals) {
      const c = cellOf(r.kind, r.limit, r.identity, r.window);
      c.base = r.count;
      seen.add(c);
    }
    // Current windows the store no longer has (an operator deleted them) start again from 0;
    // past windows are dropped once nothing of theirs waits to be written.
    for (const [key, list] of cells) {
      const keep = list.filter((c) => {
        if (seen.has(c)) return true;
        if (c.window >= since[c.kind]) {
          c.base = 0;
          return true;
        }
        return c.pending > 0 || c.writing > 0;
      });
      if (keep.length === 0) cells.delete(key);
      else if (keep.length !== list.length) cells.set(key, keep);
    }
  };

  /** One exchange at a time; a call during one waits for it (and does not start another). */
  const sync = (): Promise<void> => {
    if (running) return running;
    // A store that does not answer (a lost network) is failing too: said once, counting goes on.
    const slow = setTimeout(() => {
      if (!failing && !closed) log.warn({ store: store.description, waitedMs: WAIT_MS }, 'limit counters: the state store does not answer; counting goes on in this instance only (not shared) until it does');
      failing = true;
    }, WAIT_MS);
    slow.unref();
    running = exchange()
      .catch((err: unknown) => log.error({ err: (err as Error).message }, 'limit counters: exchange failed'))
      .finally(() => {
        clearTimeout(slow);
        running = null;
      });
    return running;
  };

  const schedule = (): void => {
    if (closed) return;
    timer = setTimeout(() => {
      timer = undefined;
      // Nothing to exchange until the counters are used (no limits configured: no queries).
      const used = started || cells.size > 0;
      void (used ? sync() : Promise.resolve()).finally(schedule);
    }, syncMs);
    timer.unref();
  };
  schedule();

  return {
    get: (kind, limit, identity, window) => {
      const c = find(cells.get(keyOf(kind, limit, identity)), window);
      return c === undefined ? 0 : c.base + c.pending + c.writing;
    },
    add: (kind, limit, identity, window, n) => {
      cellOf(kind, limit, identity, window).pending += n;
    },
    get failing() {
      return failing;
    },
    async start() {
      started = true;
      await Promise.race([sync(), sleep(WAIT_MS)]);
    },
    sync,
    async close() {
      if (closed) return;
      closed = true;
      if (timer) clearTimeout(timer);
      timer = undefined;
      await Promise.race([running ?? Promise.resolve(), sleep(WAIT_MS)]);
      let left = 0;
      for (const list of cells.values()) for (const c of list) left += c.pending;
      if (left === 0) return;
      // The last additions (sessions that ended since the last exchange).
      await Promise.race([sync(), sleep(WAIT_MS)]);
      left = 0;
      for (const list of cells.values()) for (const c of list) left += c.pending + c.writing;
      if (left > 0) log.warn({ store: store.description, uncounted: left }, 'limit counters: the last counts could not be written to the state store before stopping');
    },
  };
}
