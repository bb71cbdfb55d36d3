/**
 * The kill switch for identities: `warden identity suspend NAME --reason R` ends the
 * identity's sessions (FATAL 57P01 naming the suspension) and refuses its logins (28000)
 * on every Warden instance sharing the state store, until `warden identity resume NAME`.
 *
 * - Suspensions live in the state store (one row per suspended identity).
 * - Each instance keeps them in memory, so the check on login is a Map lookup, never a
 *   query; the map is re-read from the store at once when the store announces a change
 *   (postgres: LISTEN/NOTIFY) and every {@link DEFAULT_POLL_MS} in any case, so other
 *   instances notice at once, or within about that long.
 * - Each re-read also ends any session of a suspended identity still running here: one that
 *   logged in on another instance's heels, or while the store could not be read.
 * - When the store cannot be read, the last known suspensions stay in force (a warning is
 *   logged); nothing is lifted until the store says so.
 * - Suspending and resuming are audited (`identity.suspended`, `identity.resumed`) by the
 *   instance that does it, with who and why; each session ended is recorded as its
 *   `session.end` with the suspension as the reason.
 */
import type { Logger } from '../log/logger.js';
import type { StateStore, SuspensionRecord } from '../store/types.js';
import type { AuditData } from '../audit/log.js';

/** How often each instance re-reads the suspensions (ms). */
export const DEFAULT_POLL_MS = 2_000;

/** Longest reason kept (characters). */
export const MAX_REASON = 500;

/** Records audit events (the audit log's `record`). */
export type AuditRecorder = (type: string, data: AuditData) => void;

/** Ends the sessions of an identity on this instance with FATAL `code`/`message`; returns their ids. */
export type SessionEnder = (identity: string, t: { code: string; message: string; hint?: string }) => string[];

export class SuspensionError extends Error {
  constructor(
    readonly status: 400 | 404 | 409,
    message: string,
  ) {
    super(message);
    this.name = 'SuspensionError';
  }
}

export interface SuspensionService {
  /** The identity's suspension, from memory (cheap: called on every login). */
  check(identity: string): SuspensionRecord | undefined;
  /**
   * Suspend `identity` (again, with a new reason, when it already is): stored, audited, and
   * its sessions on this instance ended at once (other instances within a poll).
   * `by`: who (an operator's name, or e.g. `limits` for an automatic suspension).
   */
  suspend(identity: string, reason: string, by: string): Promise<{ record: SuspensionRecord; sessionsEnded: string[] }>;
  /** Lift the suspension; SuspensionError 404 when the identity is not suspended. */
  resume(identity: string, by: string): Promise<SuspensionRecord>;
  /** The suspensions as last read. */
  list(): SuspensionRecord[];
  /** Re-read the store now (and end sessions of suspended identities). */
  refresh(): Promise<void>;
  /** Tell the service how to end sessions (the proxy, created after the service). */
  setSessionEnder(end: SessionEnder): void;
  close(): void;
}

export interface SuspensionServiceOptions {
  store: StateStore;
  log: Logger;
  audit?: AuditRecorder;
  pollMs?: number;
}

/** The FATAL a session of a suspended identity ends with. */
export function suspensionTermination(s: SuspensionRecord): { code: string; message: string; hint: string } {
  return {
    code: '57P01',
    message: `terminating connection: identity ${s.identity} was suspended by ${s.suspendedBy}: ${s.reason}`,
    hint: `Logins of ${s.identity} are refused until an operator runs: warden identity resume ${s.identity}`,
  };
}

/** A reason as kept: trimmed, one line, capped. Throws SuspensionError 400 when empty. */
export function cleanReason(reason: unknown): string {
  if (typeof reason !== 'string' || reason.trim() === '') throw new SuspensionError(400, 'a reason is required (--reason)');
  const one = reason.replace(/\s+/g, ' ').trim();
  return one.length > MAX_REASON ? `${one.slice(0, MAX_REASON)}…` : one;
}

export function createSuspensionService(o: SuspensionServiceOptions): SuspensionService {
  const { store, log } = o;
  const pollMs = o.pollMs ?? DEFAULT_POLL_MS;
  let known = new Map<string, SuspensionRecord>();
  let endSessions: SessionEnder | undefined;
  let failing = false;
  let closed = false;
  let refreshing: Promise<void> | null = null;
  /** Bumped by this instance's own changes: a read that started before one is stale (the next poll reads again). */
  let generation = 0;

  /**
   * Sessions ended for an identity while its suspension is being made here: the store's change
   * notice can make a refresh end them before `suspend` itself does, and they are still the
   * suspension's (the operator is told how many ended).
   */
  const ending = new Map<string, string[]>();
  const enforce = (s: SuspensionRecord): string[] => {
    const ended = endSessions?.(s.identity, suspensionTermination(s)) ?? [];
    if (ended.length > 0) {
      log.warn({ identity: s.identity, sessions: ended, by: s.suspendedBy }, 'sessions of a suspended identity ended');
      ending.get(s.identity)?.push(...ended);
    }
    return ended;
  };

  const apply = (rows: readonly SuspensionRecord[]): void => {
    const next = new Map(rows.map((r) => [r.identity, r]));
    for (const [name, r] of next) {
      if (!known.has(name)) log.info({ identity: name, by: r.suspendedBy, reason: r.reason }, 'identity suspended');
    }
    for (const name of known.keys()) if (!next.has(name)) log.info({ identity: name }, 'identity resumed');
    known = next;
    for (const r of next.values()) enforce(r);
  };

  /** A change was announced while a read was in flight: read again once it ends. */
  let again = false;
  const refresh = (): Promise<void> => {
    if (refreshing) {
      again = true;
      return refreshing;
    }
    const started = generation;
    refreshing = store
      .listSuspensions()
      .then(
        (rows) => {
          if (closed) return;
          if (failing) log.info('suspensions readable again');
          failing = false;
          if (started === generation) apply(rows);
        },
        (err: unknown) => {
          if (!failing) log.warn({ err: (err as Error).message }, 'could not read the suspensions; the last known ones stay in force');
          failing = true;
          throw err;
        },
      )
      .finally(() => {
        refreshing = null;
        if (again && !closed) {
          again = false;
          refresh().catch(() => undefined);
        }
      });
    return refreshing;
  };

  const timer = setInterval(() => {
    refresh().catch(() => undefined);
  }, pollMs);
  timer.unref();
  // A store that announces changes (postgres: NOTIFY) is read at once on each; the poll stays as the fallback.
  const unwatch = store.watchSuspensions?.(() => {
    refresh().catch(() => undefined);
  });

  return {
    check: (identity) => known.get(identity),

    async suspend(identity, reason, by) {
      if (typeof identity !== 'string' || identity.trim() === '') throw new SuspensionError(400, 'an identity name is required');
      if (identity.length > 256 || /[\u0000-\u001f\u007f]/.test(identity)) throw new SuspensionError(400, 'not an identity name (at most 256 characters, no control characters)');
      const record: SuspensionRecord = { identity, reason: cleanReason(reason), suspendedBy: by, suspendedAt: new Date().toISOString() };
      const ended: string[] = [];
      ending.set(identity, ended);
      try {
        await store.putSuspension(record);
        generation++;
        known = new Map(known).set(identity, record);
        enforce(record);
      } finally {
        if (ending.get(identity) === ended) ending.delete(identity);
      }
      const sessionsEnded = [...new Set(ended)];
      o.audit?.('identity.suspended', { identity, reason: record.reason, by, sessions_ended: sessionsEnded });
      log.warn({ identity, by, reason: record.reason, sessions: sessionsEnded }, 'identity suspended');
      return { record, sessionsEnded };
    },

    async resume(identity, by) {
      const was = await store.deleteSuspension(identity);
      if (!was) throw new SuspensionError(404, `identity ${identity} is not suspended`);
      generation++;
      const next = new Map(known);
      next.delete(identity);
      known = next;
      o.audit?.('identity.resumed', { identity, by, suspended_by: was.suspendedBy, suspended_at: was.suspendedAt, reason: was.reason });
      log.info({ identity, by }, 'identity resumed');
      return was;
    },

    list: () => [...known.values()],
    refresh,
    setSessionEnder(end) {
      endSessions = end;
    },
    close() {
      closed = true;
      clearInterval(timer);
      unwatch?.();
    },
  };
}
