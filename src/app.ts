/**
 * Assembles a running Warden from a validated config: the PostgreSQL listener
 * and (later) the admin API, policy, audit and approvals services.
 */
import fs from 'node:fs';
import type { IdentityConfig, WardenConfig } from './config/types.js';
import { loadConfig } from './config/load.js';
import { effectiveConfig, restartNeeded, type ReloadResult, type ReloadState } from './config/reload.js';
import type { Logger } from './log/logger.js';
import { defaultMaxConnections, raiseFileLimit } from './util/fd-limit.js';
import { ProxyServer } from './proxy/connection/server.js';
import { nativeIo } from './proxy/transport/native-io.js';
import { FORWARD, type SessionHooks, type SessionInfo, type StatementOutcome, type StatementSource, type Verdict } from './contract/statement-hooks.js';
import { initSqlParser } from './sql/index.js';
import { createStatementPolicy, type StatementPolicy } from './governance/statement-policy.js';
import { AnalysisPool } from './sql/analysis-pool.js';
import { startAdmin, type AdminServer } from './admin/server.js';
import { StatementMetrics, connectionStates } from './admin/metrics.js';
import { createAdminAuthenticator, type AdminAuthenticator } from './admin/auth.js';
import type { LoginRateLimitOptions } from './auth/rate-limit.js';
import { defaultInstanceName, openAuditLog, type AuditData, type AuditLog } from './audit/log.js';
import { createStatementAuditor } from './governance/statement-audit.js';
import { createCatalogReader, type CatalogReader } from './governance/catalog-reader.js';
import { createCodeCatalog, type CodeCatalog } from './governance/code-catalog.js';
import { createMaskingService, type MaskingService } from './governance/masking.js';
import { createApprovalService, type ApprovalService } from './governance/approvals.js';
import { openStateStore } from './store/open.js';
import { createTokenService, type TokenService } from './governance/tokens.js';
import { OidcVerifier } from './auth/oidc.js';
import type { StateStore } from './store/types.js';
import { createLimitService, localCounters, type LimitCounters } from './governance/limits.js';
import { createStoreLimitCounters, type StoreLimitCounters } from './governance/limit-counters.js';
import { createSuspensionService, type SuspensionService } from './governance/suspensions.js';

/** Warden's version, recorded in `warden.start` audit events. */
export const WARDEN_VERSION = '0.1.0';

export interface Warden {
  readonly host: string;
  readonly port: number;
  readonly proxy: ProxyServer;
  /** The running configuration's policy (a reload replaces it). */
  readonly policy: StatementPolicy;
  /** The running configuration (a reload replaces it; restart-only keys keep their started values). */
  readonly config: WardenConfig;
  /** The admin HTTP listener, when `admin:` is configured. */
  readonly admin?: AdminServer;
  /** The audit log, when `audit:` is configured. */
  readonly audit?: AuditLog;
  /** The identity kill switch (`warden identity suspend`; issue 20's limits call `suspend` too), with `admin:` or `state:`. */
  readonly suspensions?: SuspensionService;
  /**
   * Read and validate the configuration file again and swap it in (SIGHUP, `POST
   * /api/v1/reload`): each session's next statement runs under it; a file that does not
   * load is refused and the running configuration kept. Audited either way.
   */
  reload(why: ReloadTrigger): Promise<ReloadResult>;
  /** The last reload's outcome (`ok` until one fails). */
  readonly reloadState: ReloadState;
  /**
   * Stop. With `drainTimeoutMs` (SIGTERM): stop accepting, let running statements and open
   * transactions finish up to that long, then end the sessions left with 57P01. Then the
   * audit log is closed with `warden.stop`. Calling it again returns the same promise.
   */
  close(o?: { drainTimeoutMs?: number; reason?: string }): Promise<void>;
}

/** How long running statements may finish when Warden stops on a signal, unless `listen.drain_timeout` says otherwise. */
export const DEFAULT_DRAIN_TIMEOUT_MS = 30_000;

export interface StartOptions {
  config: WardenConfig;
  log: Logger;
  /** Extra statement hooks (tests and embedding). */
  hooks?: SessionHooks;
  /** Failed-login limits (default: 10 per identity and address per 5 minutes). */
  loginRateLimit?: LoginRateLimitOptions;
  /**
   * Reads the configuration again for a reload (default: `loadConfig(config.source)` when the
   * source is a file; the CLI passes one that applies its --port / --admin-port again).
   */
  loadConfig?: () => WardenConfig;
}

/** Raised when a config asks for something this build cannot enforce yet. */
export class UnsupportedConfigError extends Error {
  constructor(
    readonly key: string,
    message: string,
  ) {
    super(message);
    this.name = 'UnsupportedConfigError';
  }
}


/** Chain two sets of hooks: `first` decides first; a refusal stops there. */
export function composeHooks(first: SessionHooks, second: SessionHooks | undefined): SessionHooks {
  if (!second) return first;
  const a = first.statement;
  const b = second.statement;
  const merge = (x: Verdict, y: Verdict): Verdict => {
    if (x.action === 'error' || !x.onDone) return y;
    const d1 = x.onDone;
    const d2 = y.onDone;
    const onDone = (o: StatementOutcome): void => {
      d1(o);
      d2?.(o);
    };
    return { ...y, onDone };
  };
  // A function of its own, not a closure per statement: this runs for every statement.
  const next = (x: Verdict, s: SessionInfo, stmt: StatementSource): Verdict | Promise<Verdict> => {
    if (x.action === 'error' || !b) return x;
    const v2 = b(s, stmt);
    return v2 instanceof Promise ? v2.then((y) => merge(x, y)) : merge(x, v2);
  };
  return {
    statement:
      a && b
        ? (s, stmt) => {
            const v1 = a(s, stmt);
            return v1 instanceof Promise ? v1.then((x) => next(x, s, stmt)) : next(v1, s, stmt);
          }
        : (a ?? b),
    sessionStart: (s) => {
      first.sessionStart?.(s);
      second.sessionStart?.(s);
    },
    sessionEnd: (s, r) => {
      first.sessionEnd?.(s, r);
      second.sessionEnd?.(s, r);
    },
    loginFailed: (e) => {
      first.loginFailed?.(e);
      second.loginFailed?.(e);
    },
  };
}

/**
 * Ends a session at its next statement once the credential it logged in with
 * (a token, an OIDC token) has expired or been revoked.
 */
export function credentialGuard(tokens: TokenService | undefined): SessionHooks {
  return {
    statement: (s) => {
      const a = s.auth;
      if (a.method === 'password') return FORWARD;
      const now = new Date();
      const what = a.method === 'token' ? `token ${a.tokenId ?? ''}`.trim() : 'the OIDC token';
      if (a.expiresAt && now >= a.expiresAt) {
        return { action: 'error', fatal: true, error: { code: '28000', message: `${what} this session logged in with expired at ${a.expiresAt.toISOString()}; log in again` } };
      }
      if (a.method === 'token' && a.tokenId && tokens && !tokens.stillValid(a.tokenId, now)) {
        return { action: 'error', fatal: true, error: { code: '28000', message: `${what} this session logged in with was revoked; log in again` } };
      }
      return FORWARD;
    },
  };
}

/** What started a reload (recorded with it). */
export interface ReloadTrigger {
  readonly trigger: 'SIGHUP' | 'admin-api';
  /** The operator who asked (admin API). */
  readonly identity?: string;
}

/** Everything that follows from one configuration: swapped as a whole by a reload. */
interface Generation {
  readonly config: WardenConfig;
  readonly policy: StatementPolicy;
  /** credentialGuard, then the policy's pipeline, then the caller's hooks. */
  readonly hooks: SessionHooks;
  readonly statement: NonNullable<SessionHooks['statement']>;
  readonly masking?: MaskingService;
  readonly adminAuth?: AdminAuthenticator;
  /**
   * After a reload: why a session's identity no longer stands as it logged in (removed, or its
   * kind, groups or role changed), else undefined. Absent until the first reload.
   */
  readonly stale?: (s: SessionInfo) => string | undefined;
  /** The identity objects that still stand (see `stale`); absent: this configuration's own. */
  readonly valid?: ReadonlySet<IdentityConfig>;
}

/** Kind, groups and role: what a running session's rules and upstream role were decided on. */
function sameStanding(a: IdentityConfig, b: IdentityConfig): boolean {
  return a.kind === b.kind && a.role === b.role && a.groups.length === b.groups.length && a.groups.every((g, i) => g === b.groups[i]);
}

/** Whether two identity lists would authenticate and authorize alike (for the admin API's authenticator). */
function sameIdentities(a: readonly IdentityConfig[], b: readonly IdentityConfig[]): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** The sensitive columns, detectors, maskers, key and relaxed rules a masking service is built from. */
function maskingInputs(c: WardenConfig): string {
  return JSON.stringify([c.sensitive ?? null, c.rules.filter((r) => r.action === 'mask').map((r) => [r.name, r.strict])]);
}

export async function startWarden(o: StartOptions): Promise<Warden> {
  await initSqlParser();
  const log = o.log;
  let audit: AuditLog | undefined;
  let catalog: CatalogReader | undefined;
  if (o.config.audit) {
    const instance = o.config.audit.instance ?? defaultInstanceName(o.config.listen.port);
    try {
      audit = await openAuditLog(o.config.audit, { instance, log });
    } catch (err) {
      throw new UnsupportedConfigError('audit', `${o.config.source}: audit: ${(err as Error).message}`);
    }
    catalog = createCatalogReader(log);
  }
  const auditor = audit ? createStatementAuditor({ audit, config: o.config, log, catalog }) : undefined;
  let approvals: ApprovalService | undefined;
  let tokens: TokenService | undefined;
  let state: StateStore | undefined;
  let code: CodeCatalog | undefined;
  // The minute and hour counts of `limits:`, one object for every generation (a reload keeps
  // them): shared through the state store when `state:` is configured, else in this process.
  let storeCounters: StoreLimitCounters | undefined;
  let limitCounters: LimitCounters | undefined;
  /** Limits crossed since start (metrics), kept across reloads. */
  const limitsExceeded = new Map<string, number>();
  // Large statements are parsed on a worker thread, so they never stall the other sessions.
  const pool = new AnalysisPool();
  // Metrics: counters and timers the statement path bumps, read by /metrics at scrape time
  // (only with an admin listener to serve them; `admin` needs a restart to change).
  const metrics = o.config.admin ? new StatementMetrics(o.config) : undefined;

  /** The state store (approvals without state.store: in memory). Opened once; `state` needs a restart. */
  const openState = async (c: WardenConfig): Promise<StateStore> => {
    try {
      return await openStateStore(c.state?.store ?? { kind: 'sqlite', location: ':memory:' });
    } catch (err) {
      throw new UnsupportedConfigError('state', `${c.source}: state: ${(err as Error).message}`);
    }
  };

  /**
   * The services and policy of one configuration. Creates what it newly needs (a catalog
   * reader, the code catalog, the state store, the approval service); reuses the previous
   * generation's masking service when its inputs did not change. Swaps nothing: `commit`
   * does, and cannot fail.
   */
  const build = async (c: WardenConfig, prev: Generation | undefined): Promise<{ next: Generation; commit: () => void }> => {
    const masks = c.rules.some((r) => r.action === 'mask');
    if (masks && !catalog) catalog = createCatalogReader(log);
    const masking =
      masks && catalog ? (prev?.masking && maskingInputs(prev.config) === maskingInputs(c) ? prev.masking : createMaskingService(c, catalog, log)) : undefined;
    const approves = c.rules.some((r) => r.action === 'approve') || c.limits.some((l) => l.onExceed === 'approve');
    // The state store, tokens and the approval service (whose API the admin listener serves)
    // start with Warden: a reload reconfigures them but does not create them.
    if (!prev && (approves || c.state)) state = await openState(c);
    if (!prev && state && c.state) tokens = createTokenService(state, log);
    let newApprovals: ApprovalService | undefined;
    if (state && approves && (!prev || approvals)) {
      if (!c.state) log.warn('approve rules without state.store: approval requests are kept in memory and lost when Warden stops');
      if (!c.admin) log.warn('approve rules without admin: nobody can approve requests (the approvals API is served on the admin listener)');
      if (!approvals) {
        const instance = c.audit?.instance ?? defaultInstanceName(c.listen.port);
        const a = c.admin;
        // The bound port (admin.port may be 0): asked when a request is made, after the listener started.
        const adminUrl = a ? () => `${a.tls ? 'https' : 'http'}://${a.host}:${admin?.port ?? a.port}` : undefined;
        newApprovals = createApprovalService({ config: c, store: state, log, audit, instance, adminUrl, textCap: c.approvals?.textCap });
      }
    }
    const approvalService = approvals ?? newApprovals;
    // Functions, triggers and rules are read from the catalog when some rule could use what they do.
    if (c.rules.length > 0 && !catalog) catalog = createCatalogReader(log);
    const reader = catalog;
    if (c.rules.length > 0 && reader && !code) code = createCodeCatalog({ query: (db, sql) => reader.query(db, sql, []), log });
    // Limits: the counts survive a reload (the same counters), and with state: a restart, and
    // are shared with the other instances using the store (docs/limits.md).
    if (c.limits.length > 0 && !limitCounters) {
      if (state && c.state) {
        storeCounters = createStoreLimitCounters({ store: state, log });
        limitCounters = { get: storeCounters.get, add: storeCounters.add };
      } else limitCounters = localCounters();
    }
    // max_estimated_rows: the planner's estimates, on read-only connections of their own.
    if (c.limits.some((l) => l.maxEstimatedRows !== undefined) && !catalog) catalog = createCatalogReader(log);
    const estimating = catalog;
    // Read the stored counts before the first statement under these limits.
    if (c.limits.length > 0) await storeCounters?.start();
    const limits =
      c.limits.length > 0
        ? createLimitService({
            limits: c.limits,
            log,
            record: audit ? (t, d) => audit!.record(t, d as AuditData) : undefined,
            suspend: () => (suspensions ? (name, reason, by) => suspensions!.suspend(name, reason, by) : undefined),
            counters: limitCounters,
            estimator: estimating ? (db, sql, params, path) => estimating.estimate(db, sql, params, path) : undefined,
            exceededCounts: limitsExceeded,
          })
        : undefined;
    const policy = createStatementPolicy(c, log, { auditor, masking, approvals: approvalService, code, pool, previous: prev?.policy, limits });
    if (metrics) {
      metrics.counts.configure(c);
      policy.stats.ruled = metrics.ruled;
    }
    const hooks = composeHooks(credentialGuard(tokens), composeHooks(policy.hooks, o.hooks));
    const adminAuth = !c.admin
      ? undefined
      : prev?.adminAuth && sameIdentities(prev.config.identities, c.identities)
        ? prev.adminAuth
        : createAdminAuthenticator(c.identities, {
            loginFailed: (e) => audit?.record('login.failed', { identity: e.identity, client_address: e.clientAddress, reason: e.reason, channel: 'admin-api' }),
          });
    let stale: Generation['stale'];
    let valid: Set<IdentityConfig> | undefined;
    if (prev) {
      // Identity objects a running session may hold that still stand: the new ones, and the
      // older ones whose kind, groups and role did not change.
      const byName = new Map(c.identities.map((i) => [i.name, i]));
      const standing = new Set<IdentityConfig>(c.identities);
      valid = standing;
      for (const i of prev.valid ?? prev.config.identities) {
        const now = byName.get(i.name);
        if (now && sameStanding(i, now)) standing.add(i);
      }
      stale = (s) => {
        if (s.auth.method === 'oidc' || standing.has(s.identity)) return undefined;
        return byName.has(s.identity.name)
          ? `identity "${s.identity.name}" changed in the reloaded configuration (kind, groups or role)`
          : `identity "${s.identity.name}" is no longer in the configuration`;
      };
    }
    const next: Generation = {
      config: c,
      policy,
      hooks,
      statement: hooks.statement!,
      ...(masking ? { masking } : {}),
      ...(adminAuth ? { adminAuth } : {}),
      ...(stale && valid ? { stale, valid } : {}),
    };
    return {
      next,
      commit: () => {
        if (newApprovals) approvals = newApprovals;
        else if (approvals && prev) approvals.reconfigure(c);
        if (prev?.masking && prev.masking !== masking) prev.masking.close();
        if (masking && masking !== prev?.masking) for (const db of Object.values(c.databases)) masking.warm(db);
      },
    };
  };
  let gen: Generation;
  try {
    const first = await build(o.config, undefined);
    first.commit();
    gen = first.next;
  } catch (err) {
    await storeCounters?.close();
    await audit?.close();
    await catalog?.close();
    await pool.close();
    throw err;
  }
  const oidc = o.config.oidc ? new OidcVerifier(o.config.oidc) : undefined;
  if (oidc && !o.config.listen.tls) log.warn('oidc is configured but listen.tls is not: OIDC logins need TLS, so none can succeed');

  /** A session whose identity no longer stands after a reload: ended at its next statement. */
  const endStale = (s: SessionInfo, why: string): Verdict => {
    log.info({ session: s.id, identity: s.identity.name, reason: why }, 'session ended: its identity changed in a reload');
    return { action: 'error', fatal: true, error: { code: '57P01', message: `terminating connection: ${why}; log in again` } };
  };
  // The proxy calls through `gen`: a reload swaps it, and each session's next statement sees it.
  // Until the first reload, one property read more than calling the pipeline directly.
  const hooks: SessionHooks = {
    timers: metrics?.timers,
    statement: (s, stmt) => {
      const g = gen;
      if (g.stale !== undefined) {
        const why = g.stale(s);
        if (why !== undefined) return endStale(s, why);
      }
      return g.statement(s, stmt);
    },
    sessionStart: (s) => gen.hooks.sessionStart?.(s),
    sessionEnd: (s, r) => gen.hooks.sessionEnd?.(s, r),
    loginFailed: (e) => gen.hooks.loginFailed?.(e),
  };
  // The kill switch for identities: suspensions in the state store (in memory without
  // state.store), checked per login from memory, shared by the instances using the store.
  let suspensions: SuspensionService | undefined;
  if (o.config.admin || o.config.state) {
    try {
      state ??= await openState(o.config);
      suspensions = createSuspensionService({ store: state, log, audit: audit ? (t, d) => audit!.record(t, d) : undefined });
      await suspensions.refresh();
    } catch (err) {
      suspensions?.close();
      await storeCounters?.close();
      await pool.close();
      await state?.close();
      await catalog?.close();
      await audit?.close();
      throw err instanceof UnsupportedConfigError ? err : new UnsupportedConfigError('state', `${o.config.source}: state: suspensions: ${(err as Error).message}`);
    }
  }
  const closeServices = async (): Promise<void> => {
    // The last counts are written before the store closes.
    await storeCounters?.close();
    suspensions?.close();
    await pool.close();
    tokens?.close();
    gen.masking?.close();
    await catalog?.close();
    if (approvals) await approvals.close();
    else await state?.close();
  };

  // Like PostgreSQL and PgBouncer: the soft open-file limit up to the hard one, and a connection
  // cap below it, so Warden can always still refuse a client clearly (53300) instead of running dry.
  const fileLimit = raiseFileLimit();
  const proxy = new ProxyServer({
    config: o.config,
    log,
    hooks,
    loginRateLimit: o.loginRateLimit,
    tokens,
    oidc,
    defaultMaxConnections: defaultMaxConnections(fileLimit),
    suspended: suspensions ? (name) => suspensions!.check(name) : undefined,
  });
  suspensions?.setSessionEnder((name, t) => proxy.terminateIdentity(name, t));
  let addr: { host: string; port: number };
  try {
    addr = await proxy.listen();
  } catch (err) {
    await closeServices();
    await audit?.close();
    throw err;
  }
  if (audit) {
    audit.record('warden.start', { version: WARDEN_VERSION, pid: process.pid, host: addr.host, port: addr.port, instance: audit.instance });
    audit.record('config.loaded', { source: o.config.source, hash: o.config.hash });
  }

  // ---- reload ---------------------------------------------------------------------------------
  const readConfig = o.loadConfig ?? (o.config.source.startsWith('/') && fs.existsSync(o.config.source) ? () => loadConfig(o.config.source) : undefined);
  const reloadState: ReloadState = { ok: true };
  let reloads: Promise<unknown> = Promise.resolve();

  const reloadNow = async (why: ReloadTrigger): Promise<ReloadResult> => {
    const running = gen.config;
    const who = { trigger: why.trigger, ...(why.identity ? { identity: why.identity } : {}) };
    const refused = (err: unknown, hash?: string): ReloadResult => {
      const reason = err instanceof Error ? err.message : String(err);
      const at = new Date().toISOString();
      Object.assign(reloadState, { ok: false, at, error: reason });
      log.error({ source: running.source, reason, ...who }, 'configuration reload refused: the running configuration is kept');
      audit?.record('config.reload_failed', { source: running.source, previous_hash: running.hash, hash, reason, ...who });
      return { ok: false, at, source: running.source, previousHash: running.hash, ...(hash ? { hash } : {}), restartNeeded: [], error: reason };
    };
    if (!readConfig) return refused(new Error(`the configuration (${running.source}) was not loaded from a file: there is nothing to reload`));
    let next: WardenConfig;
    try {
      next = readConfig();
    } catch (err) {
      return refused(err);
    }
    const restart = restartNeeded(running, next);
    // Their statements are refused (fail closed) until a restart starts the approval service and its API.
    if (!approvals && (next.rules.some((r) => r.action === 'approve') || next.limits.some((l) => l.onExceed === 'approve'))) restart.push('rules with action approve or limits with on_exceed approve (approvals start with Warden)');
    const effective = effectiveConfig(running, next);
    let built: Awaited<ReturnType<typeof build>>;
    try {
      built = await build(effective, gen);
      proxy.reconfigure(effective); // validates the identities' verifiers before swapping them
    } catch (err) {
      return refused(err, next.hash);
    }
    built.commit();
    gen = built.next;
    const at = new Date().toISOString();
    Object.assign(reloadState, { ok: true, at });
    delete reloadState.error;
    const unchanged = next.hash === running.hash;
    log.info({ source: next.source, hash: next.hash, previousHash: running.hash, unchanged, ...who }, 'configuration reloaded: the next statement of every session runs under it');
    if (restart.length > 0) log.warn({ keys: restart }, `configuration reloaded, but these changed keys need a restart and keep their running values: ${restart.join(', ')}`);
    audit?.record('config.reloaded', { source: next.source, previous_hash: running.hash, hash: next.hash, restart_needed: restart, ...who });
    return { ok: true, at, source: next.source, previousHash: running.hash, hash: next.hash, restartNeeded: restart, ...(unchanged ? { unchanged } : {}) };
  };
  /** One reload at a time, in order. */
  const reload = (why: ReloadTrigger): Promise<ReloadResult> => {
    const p = reloads.then(() => reloadNow(why));
    reloads = p.catch(() => undefined);
    return p;
  };

  /** Set once close() starts (and read by /readyz, which answers 503 from then on). */
  let closing: Promise<void> | undefined;
  let admin: AdminServer | undefined;
  if (o.config.admin) {
    try {
      admin = await startAdmin(
        o.config.admin,
        {
          sessions: () => proxy.sessionCount,
          statements: () => gen.policy.stats,
          analysisCache: () => gen.policy.cache.stats(),
          connections: () => connectionStates(proxy.handshakeCount, proxy.listSessions()),
          databases: () => Object.values(gen.config.databases),
          stopping: () => closing !== undefined,
          reload: () => ({ ...reloadState }),
          limitsExceeded: () => limitsExceeded,
        },
        log,
        {
          audit,
          approvals,
          config: () => gen.config,
          statementMetrics: metrics,
          auth: { authenticate: (header, address) => gen.adminAuth!.authenticate(header, address) },
          sessions: {
            list: () => proxy.listSessions(),
            terminate: (id, t) => proxy.terminate(id, t),
            suspensions,
            approvals: () => approvals,
            audit: audit ? (t, d) => audit!.record(t, d) : undefined,
            instance: o.config.audit?.instance ?? defaultInstanceName(o.config.listen.port),
            config: () => gen.config,
          },
          reload: {
            run: (identity) => reload({ trigger: 'admin-api', identity }),
            operators: () => gen.config.admin?.operators ?? [],
          },
          // MCP over HTTP: a client of this very listener, as the caller's identity.
          mcp: { config: () => gen.config, listener: () => addr, state: () => state },
        },
      );
    } catch (err) {
      await proxy.close();
      await closeServices();
      await audit?.close();
      throw err;
    }
  }
  log.info(
    {
      host: addr.host,
      port: addr.port,
      config: o.config.source,
      configHash: o.config.hash,
      socketIo: nativeIo.available ? 'native' : 'node',
      maxConnections: proxy.maxConnections,
      openFileLimit: fileLimit?.soft,
    },
    'warden listening',
  );
  if (!nativeIo.available && process.env.WARDEN_NATIVE_IO !== '0') {
    log.warn({ reason: nativeIo.reason }, 'native socket I/O unavailable: sessions relay through Node.js sockets, which costs more CPU per statement');
  }
  return {
    host: addr.host,
    port: addr.port,
    proxy,
    get policy() {
      return gen.policy;
    },
    get config() {
      return gen.config;
    },
    admin,
    audit,
    suspensions,
    reload,
    get reloadState() {
      return { ...reloadState };
    },
    close: (c = {}) =>
      (closing ??= (async () => {
        if (c.drainTimeoutMs !== undefined) {
          const drainMs = c.drainTimeoutMs;
          log.info({ sessions: proxy.sessionCount, timeoutMs: drainMs }, 'warden stopping: no new connections; running statements may finish');
          const { timedOut } = await proxy.drain(drainMs);
          if (timedOut > 0) log.warn({ sessions: timedOut, timeoutMs: drainMs }, 'drain timeout: the remaining sessions were ended');
        }
        await admin?.close();
        await proxy.close();
        await reloads;
        await closeServices();
        await audit?.close({ type: 'warden.stop', data: { pid: process.pid, ...(c.reason ? { reason: c.reason } : {}) } });
        log.info('warden stopped');
      })()),
  };
}
