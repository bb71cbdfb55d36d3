/**
 * Readiness (`/readyz`): can this Warden serve statements now?
 *
 * Not ready while
 * - an upstream cannot be reached or logged into: a probe per database connects
 *   and logs in with the configured upstream credentials (Warden's own upstream
 *   connection code, so TLS and authentication are the sessions'), every few
 *   seconds and, asked by `/readyz`, at most once a second;
 * - the audit store cannot write and `audit.on_failure` is `block` (statements
 *   are refused then);
 * - the latest configuration reload failed (the old config still runs, but the
 *   file on disk is not what runs);
 * - Warden is stopping (draining: it accepts no new connections).
 *
 * Probe results are cached; a failure is logged when it starts and when it
 * ends, with the database's redacted URL (never the password).
 *
 * @module
 */
import type { DatabaseConfig } from '../config/types.js';
import type { Logger } from '../log/logger.js';
import { connectUpstream, UpstreamError } from '../proxy/connection/upstream.js';
import { encodeTerminate } from '../wire/index.js';

/** Probe every database this often. */
export const PROBE_INTERVAL_MS = 5_000;
/** `/readyz` probes again when the latest probe is older than this. */
export const ON_DEMAND_MIN_MS = 1_000;
/** A probe (connect, TLS, login) that takes longer fails. */
export const PROBE_TIMEOUT_MS = 3_000;

/** What H1's reload reports (AdminSources.reload). */
export interface ReloadStatus {
  readonly ok: boolean;
  /** When the latest reload was tried (ISO 8601 or a Date). */
  readonly at?: string | Date;
  readonly error?: string;
}

export interface ReadinessCheck {
  readonly check: 'upstream' | 'audit' | 'reload' | 'stopping';
  readonly ok: boolean;
  readonly database?: string;
  /** Why it is not ok. */
  readonly reason?: string;
  /** When the check last ran (upstream probes). */
  readonly checkedAt?: string;
  /** Since when it has been failing. */
  readonly since?: string;
  /** How long the probe took, ms. */
  readonly ms?: number;
}

export interface ReadinessReport {
  readonly ready: boolean;
  readonly checks: readonly ReadinessCheck[];
}

export interface ReadinessOptions {
  /** The databases to probe (a function: a reload may change them). */
  databases: () => readonly DatabaseConfig[];
  audit?: { readonly onFailure: 'block' | 'continue'; readonly stats: { readonly healthy: boolean; readonly lastError?: string } };
  reload?: () => ReloadStatus | undefined;
  /** True once Warden is stopping (SIGTERM's drain): no new connections are accepted. */
  stopping?: () => boolean;
  log: Logger;
  /** Connect and log in (default: Warden's upstream connection code); rejects with the reason. */
  probe?: (db: DatabaseConfig) => Promise<void>;
  intervalMs?: number;
  onDemandMinMs?: number;
  timeoutMs?: number;
}

interface ProbeState {
  ok: boolean;
  reason?: string;
  checkedAt?: number;
  since?: number;
  ms?: number;
  /** The URL it was probed at (a reload may change it: then it is probed anew). */
  url: string;
  inFlight?: Promise<void>;
  startedAt: number;
}

/**
 * Connects and logs in to the database's upstream with its configured credentials, then says
 * goodbye. Rejects with the reason: Warden's (connect, TLS) and PostgreSQL's own message (which
 * names the user, never the password).
 */
export async function probeUpstream(db: DatabaseConfig, timeoutMs = PROBE_TIMEOUT_MS): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  let late = false;
  const attempt = connectUpstream(db, [['application_name', 'warden-readiness']], { connectTimeoutMs: timeoutMs });
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      late = true;
      reject(new UpstreamError(`no answer within ${timeoutMs} ms (connect, TLS and login)`));
    }, timeoutMs);
  });
  // A login that answers after the timeout is closed when it does.
  attempt.then(
    (c) => {
      if (late) c.socket.destroy();
    },
    () => undefined,
  );
  try {
    const c = await Promise.race([attempt, timeout]);
    c.socket.end(encodeTerminate());
    c.socket.on('error', () => undefined);
    setTimeout(() => c.socket.destroy(), 1_000).unref();
  } catch (err) {
    throw new Error(reasonOf(err));
  } finally {
    clearTimeout(timer);
  }
}

/** Why a probe failed, without credentials (UpstreamError messages carry none; PostgreSQL's own message says which user, never the password). */
function reasonOf(err: unknown): string {
  if (err instanceof UpstreamError) return err.upstream?.message ? `${err.message}: ${err.upstream.message}` : err.message;
  return err instanceof Error ? err.message : String(err);
}

export class Readiness {
  private readonly o: ReadinessOptions;
  private readonly probes = new Map<string, ProbeState>();
  private timer: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(o: ReadinessOptions) {
    this.o = o;
  }

  /** Probe now, then every interval. */
  start(): void {
    if (this.timer || this.closed) return;
    void this.probeAll(0);
    this.timer = setInterval(() => void this.probeAll(0), this.o.intervalMs ?? PROBE_INTERVAL_MS);
    this.timer.unref();
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Probes the databases whose latest probe is older than `minAgeMs` (one probe at a time per database). */
  private probeAll(minAgeMs: number): Promise<void[]> {
    const dbs = this.o.databases();
    const names = new Set(dbs.map((d) => d.name));
    for (const name of this.probes.keys()) if (!names.has(name)) this.probes.delete(name);
    return Promise.all(dbs.map((db) => this.probeOne(db, minAgeMs)));
  }

  private probeOne(db: DatabaseConfig, minAgeMs: number): Promise<void> {
    const url = db.upstream.redactedUrl;
    let st = this.probes.get(db.name);
    if (!st || st.url !== url) {
      st = { ok: false, reason: 'not probed yet', url, startedAt: 0 };
      this.probes.set(db.name, st);
    }
    if (st.inFlight) return st.inFlight;
    const now = Date.now();
    if (st.checkedAt !== undefined && now - st.startedAt < minAgeMs) return Promise.resolve();
    const state = st;
    state.startedAt = now;
    const started = performance.now();
    const probe = this.o.probe ?? ((d: DatabaseConfig) => probeUpstream(d, this.o.timeoutMs ?? PROBE_TIMEOUT_MS));
    state.inFlight = probe(db).then(
      () => {
        if (!state.ok && state.checkedAt !== undefined) this.o.log.info({ database: db.name, upstream: url }, 'readiness: upstream reachable again');
        state.ok = true;
        state.reason = undefined;
        state.since = undefined;
      },
      (err: unknown) => {
        const reason = reasonOf(err);
        if (state.ok || state.checkedAt === undefined || state.reason !== reason) {
          this.o.log.warn({ database: db.name, upstream: url, reason }, 'readiness: upstream cannot be reached or logged into');
        }
        if (state.ok || state.since === undefined) state.since = Date.now();
        state.ok = false;
        state.reason = reason;
      },
    ).finally(() => {
      state.checkedAt = Date.now();
      state.ms = Math.round((performance.now() - started) * 10) / 10;
      state.inFlight = undefined;
    });
    return state.inFlight;
  }

  /** The latest known state, without probing (metrics). */
  current(): ReadinessReport {
    const checks: ReadinessCheck[] = [];
    for (const db of this.o.databases()) {
      const st = this.probes.get(db.name);
      checks.push({
        check: 'upstream',
        database: db.name,
        ok: st?.ok ?? false,
        ...(st?.ok ? {} : { reason: st?.reason ?? 'not probed yet' }),
        ...(st?.checkedAt !== undefined ? { checkedAt: new Date(st.checkedAt).toISOString(), ms: st.ms } : {}),
        ...(st?.since !== undefined ? { since: new Date(st.since).toISOString() } : {}),
      });
    }
    const audit = this.o.audit;
    if (audit) {
      const ok = audit.stats.healthy || audit.onFailure !== 'block';
      checks.push({
        check: 'audit',
        ok,
        ...(audit.stats.healthy
          ? {}
          : {
              reason: `the audit store cannot write (${audit.stats.lastError ?? 'unknown error'})${
                ok ? '; on_failure: continue, so statements run unrecorded meanwhile' : '; on_failure: block refuses statements until it can'
              }`,
            }),
      });
    }
    const r = this.o.reload?.();
    if (r) {
      const at = r.at instanceof Date ? r.at.toISOString() : r.at;
      checks.push({
        check: 'reload',
        ok: r.ok,
        ...(r.ok ? {} : { reason: `the latest configuration reload failed${at ? ` (${at})` : ''}: ${r.error ?? 'unknown error'}; the previous configuration is still in force` }),
        ...(at ? { checkedAt: at } : {}),
      });
    }
    if (this.o.stopping?.()) {
      checks.push({ check: 'stopping', ok: false, reason: 'Warden is stopping: it accepts no new connections (running statements may finish)' });
    }
    return { ready: checks.every((c) => c.ok), checks };
  }

  /** For `/readyz`: probes again when the latest probe is older than a second (waiting at most the probe timeout), then reports. */
  async check(): Promise<ReadinessReport> {
    if (!this.closed) await this.probeAll(this.o.onDemandMinMs ?? ON_DEMAND_MIN_MS);
    return this.current();
  }
}
