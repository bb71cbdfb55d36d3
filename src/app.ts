/**
 * Assembles a running Warden from a validated config: the PostgreSQL listener
 * and (later) the admin API, policy, audit and approvals services.
 */
import type { WardenConfig } from './config/types.js';
import type { Logger } from './log/logger.js';
import { ProxyServer } from './proxy/server.js';
import type { SessionHooks } from './proxy/hooks.js';

export interface Warden {
  readonly host: string;
  readonly port: number;
  readonly proxy: ProxyServer;
  close(): Promise<void>;
}

export interface StartOptions {
  config: WardenConfig;
  log: Logger;
  /** Extra statement hooks (tests and embedding). */
  hooks?: SessionHooks;
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
  if (config.rules.length > 0) fail('rules', 'policy rules are not enforced by this version of Warden yet');
  if (config.default === 'deny') fail('default', '`default: deny` is not enforced by this version of Warden yet');
  if (config.sensitive && (Object.keys(config.sensitive.columns).length > 0 || config.sensitive.detect.length > 0)) {
    fail('sensitive', 'masking of sensitive data is not implemented by this version of Warden yet');
  }
  if (config.audit) fail('audit', 'the audit log is not implemented by this version of Warden yet');
}

export async function startWarden(o: StartOptions): Promise<Warden> {
  assertEnforceable(o.config);
  const proxy = new ProxyServer({ config: o.config, log: o.log, hooks: o.hooks });
  const addr = await proxy.listen();
  o.log.info({ host: addr.host, port: addr.port, config: o.config.source, configHash: o.config.hash }, 'warden listening');
  return {
    host: addr.host,
    port: addr.port,
    proxy,
    close: async () => {
      await proxy.close();
      o.log.info('warden stopped');
    },
  };
}
