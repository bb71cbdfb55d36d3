/**
 * Assembles a running Warden from a validated config: the PostgreSQL listener
 * and (later) the admin API, policy, audit and approvals services.
 */
import type { WardenConfig } from './config/types.js';
import type { Logger } from './log/logger.js';
import { ProxyServer } from './proxy/server.js';
import type { SessionHooks, StatementOutcome, Verdict } from './proxy/hooks.js';
import { initSqlParser } from './sql/index.js';
import { createStatementPolicy, type StatementPolicy } from './governance/statement-policy.js';
import { startAdmin, type AdminServer } from './admin/server.js';
import type { LoginRateLimitOptions } from './auth/rate-limit.js';

export interface Warden {
  readonly host: string;
  readonly port: number;
  readonly proxy: ProxyServer;
  readonly policy: StatementPolicy;
  /** The admin HTTP listener, when `admin:` is configured. */
  readonly admin?: AdminServer;
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

/**
 * Refuse configs whose meaning this build cannot honour yet, instead of
 * silently ignoring them in a way that fails open.
 */
export function assertEnforceable(config: WardenConfig): void {
  const fail = (key: string, what: string): never => {
    throw new UnsupportedConfigError(key, `${config.source}: ${key}: ${what}; refusing to start rather than run without it`);
  };
  // rules/default are enforced; `approve` and `mask` decisions fail closed (see governance/).
  if (config.audit) fail('audit', 'the audit log is not implemented by this version of Warden yet');
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
  return {
    statement:
      a && b
        ? (s, stmt) => {
            const v1 = a(s, stmt);
            const then = (x: Verdict): Verdict | Promise<Verdict> => {
              if (x.action === 'error') return x;
              const v2 = b(s, stmt);
              return v2 instanceof Promise ? v2.then((y) => merge(x, y)) : merge(x, v2);
            };
            return v1 instanceof Promise ? v1.then(then) : then(v1);
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
  };
}

export async function startWarden(o: StartOptions): Promise<Warden> {
  assertEnforceable(o.config);
  await initSqlParser();
  const policy = createStatementPolicy(o.config, o.log);
  const proxy = new ProxyServer({ config: o.config, log: o.log, hooks: composeHooks(policy.hooks, o.hooks), loginRateLimit: o.loginRateLimit });
  const addr = await proxy.listen();
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
      );
    } catch (err) {
      await proxy.close();
      throw err;
    }
  }
  o.log.info({ host: addr.host, port: addr.port, config: o.config.source, configHash: o.config.hash }, 'warden listening');
  return {
    host: addr.host,
    port: addr.port,
    proxy,
    policy,
    admin,
    close: async () => {
      await admin?.close();
      await proxy.close();
      o.log.info('warden stopped');
    },
  };
}
