/**
 * Assembles a running Warden from a validated config: the PostgreSQL listener
 * and (later) the admin API, policy, audit and approvals services.
 */
import type { WardenConfig } from './config/types.js';
import type { Logger } from './log/logger.js';
import { defaultMaxConnections, raiseFileLimit } from './util/fd-limit.js';
import { ProxyServer } from './proxy/connection/server.js';
import { nativeIo } from './proxy/transport/native-io.js';
import { FORWARD, type SessionHooks, type SessionInfo, type StatementOutcome, type StatementSource, type Verdict } from './contract/statement-hooks.js';
import { initSqlParser } from './sql/index.js';
import { createStatementPolicy, type StatementPolicy } from './governance/statement-policy.js';
import { AnalysisPool } from './sql/analysis-pool.js';
import { startAdmin, type AdminServer } from './admin/server.js';
import { createAdminAuthenticator } from './admin/auth.js';
import type { LoginRateLimitOptions } from './auth/rate-limit.js';
import { defaultInstanceName, openAuditLog, type AuditLog } from './audit/log.js';
import { createStatementAuditor } from './governance/statement-audit.js';
import { createCatalogReader, type CatalogReader } from './governance/catalog-reader.js';
import { createCodeCatalog } from './governance/code-catalog.js';
import { createMaskingService } from './governance/masking.js';
import { createApprovalService, type ApprovalService } from './governance/approvals.js';
import { openStateStore } from './store/open.js';
import { createTokenService, type TokenService } from './governance/tokens.js';
import { OidcVerifier } from './auth/oidc.js';
import type { StateStore } from './store/types.js';

/** Warden's version, recorded in `warden.start` audit events. */
export const WARDEN_VERSION = '0.1.0';

export interface Warden {
  readonly host: string;
  readonly port: number;
  readonly proxy: ProxyServer;
  readonly policy: StatementPolicy;
  /** The admin HTTP listener, when `admin:` is configured. */
  readonly admin?: AdminServer;
  /** The audit log, when `audit:` is configured. */
  readonly audit?: AuditLog;
  close(): Promise<void>;
}

export interface StartOptions {
  config: WardenConfig;
  log: Logger;
  /** Extra statement hooks (tests and embedding). */
  hooks?: SessionHooks;
  /** Failed-login limits (default: 10 per identity and address per 5 minutes). */
  loginRateLimit?: LoginRateLimitOptions;
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

export async function startWarden(o: StartOptions): Promise<Warden> {
  await initSqlParser();
  let audit: AuditLog | undefined;
  let catalog: CatalogReader | undefined;
  if (o.config.audit) {
    const instance = o.config.audit.instance ?? defaultInstanceName(o.config.listen.port);
    try {
      audit = await openAuditLog(o.config.audit, { instance, log: o.log });
    } catch (err) {
      throw new UnsupportedConfigError('audit', `${o.config.source}: audit: ${(err as Error).message}`);
    }
    catalog = createCatalogReader(o.log);
  }
  const masks = o.config.rules.some((r) => r.action === 'mask');
  if (masks && !catalog) catalog = createCatalogReader(o.log);
  const masking = masks && catalog ? createMaskingService(o.config, catalog, o.log) : undefined;
  const auditor = audit ? createStatementAuditor({ audit, config: o.config, log: o.log, catalog }) : undefined;
  let approvals: ApprovalService | undefined;
  let tokens: TokenService | undefined;
  const approves = o.config.rules.some((r) => r.action === 'approve');
  let state: StateStore | undefined;
  if (approves || o.config.state) {
    try {
      state = await openStateStore(o.config.state?.store ?? { kind: 'sqlite', location: ':memory:' });
    } catch (err) {
      await audit?.close();
      await catalog?.close();
      throw new UnsupportedConfigError('state', `${o.config.source}: state: ${(err as Error).message}`);
    }
  }
  if (state && o.config.state) tokens = createTokenService(state, o.log);
  const oidc = o.config.oidc ? new OidcVerifier(o.config.oidc) : undefined;
  if (oidc && !o.config.listen.tls) o.log.warn('oidc is configured but listen.tls is not: OIDC logins need TLS, so none can succeed');
  if (state && approves) {
    if (!o.config.state) o.log.warn('approve rules without state.store: approval requests are kept in memory and lost when Warden stops');
    if (!o.config.admin) o.log.warn('approve rules without admin: nobody can approve requests (the approvals API is served on the admin listener)');
    const instance = o.config.audit?.instance ?? defaultInstanceName(o.config.listen.port);
    const adminUrl = o.config.admin ? `${o.config.admin.tls ? 'https' : 'http'}://${o.config.admin.host}:${o.config.admin.port}` : undefined;
    approvals = createApprovalService({ config: o.config, store: state, log: o.log, audit, instance, adminUrl, textCap: o.config.approvals?.textCap });
  }
  // Functions, triggers and rules are read from the catalog when some rule could use what they do.
  if (o.config.rules.length > 0 && !catalog) catalog = createCatalogReader(o.log);
  const reader = catalog;
  const code =
    o.config.rules.length > 0 && reader
      ? createCodeCatalog({ query: (db, sql) => reader.query(db, sql, []), log: o.log })
      : undefined;
  // Large statements are parsed on a worker thread, so they never stall the other sessions.
  const pool = new AnalysisPool();
  const policy = createStatementPolicy(o.config, o.log, { auditor, masking, approvals, code, pool });
  // Like PostgreSQL and PgBouncer: the soft open-file limit up to the hard one, and a connection
  // cap below it, so Warden can always still refuse a client clearly (53300) instead of running dry.
  const fileLimit = raiseFileLimit();
  const proxy = new ProxyServer({
    config: o.config,
    log: o.log,
    hooks: composeHooks(credentialGuard(tokens), composeHooks(policy.hooks, o.hooks)),
    loginRateLimit: o.loginRateLimit,
    tokens,
    oidc,
    defaultMaxConnections: defaultMaxConnections(fileLimit),
  });
  let addr: { host: string; port: number };
  try {
    addr = await proxy.listen();
  } catch (err) {
    await audit?.close();
    await catalog?.close();
    await approvals?.close();
    throw err;
  }
  // The sensitive columns are read before the first statement needs them.
  if (masking) for (const db of Object.values(o.config.databases)) masking.warm(db);
  if (audit) {
    audit.record('warden.start', { version: WARDEN_VERSION, pid: process.pid, host: addr.host, port: addr.port, instance: audit.instance });
    audit.record('config.loaded', { source: o.config.source, hash: o.config.hash });
  }
  let admin: AdminServer | undefined;
  if (o.config.admin) {
    try {
      admin = await startAdmin(
        o.config.admin,
        {
          sessions: () => proxy.sessionCount,
          statements: () => policy.stats,
          analysisCache: () => policy.cache.stats(),
        },
        o.log,
        {
          audit,
          approvals,
          auth: createAdminAuthenticator(o.config.identities, {
            loginFailed: (e) => audit?.record('login.failed', { identity: e.identity, client_address: e.clientAddress, reason: e.reason, channel: 'admin-api' }),
          }),
        },
      );
    } catch (err) {
      await proxy.close();
      await audit?.close();
      await catalog?.close();
      await approvals?.close();
      throw err;
    }
  }
  o.log.info(
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
    o.log.warn({ reason: nativeIo.reason }, 'native socket I/O unavailable: sessions relay through Node.js sockets, which costs more CPU per statement');
  }
  return {
    host: addr.host,
    port: addr.port,
    proxy,
    policy,
    admin,
    audit,
    close: async () => {
      await admin?.close();
      await proxy.close();
      await pool.close();
      tokens?.close();
      masking?.close();
      await catalog?.close();
      if (approvals) await approvals.close();
      else await state?.close();
      await audit?.close({ type: 'warden.stop', data: { pid: process.pid } });
      o.log.info('warden stopped');
    },
  };
}
