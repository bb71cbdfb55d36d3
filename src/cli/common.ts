/** What every CLI command shares: config loading, output, errors, the admin API client. */
import fs from 'node:fs';
import path from 'node:path';
import { Option } from 'commander';
import { ConfigError, loadConfig, loadConfigPart } from '../config/load.js';
import type { WardenConfig } from '../config/types.js';

export const DEFAULT_CONFIG = './warden.yaml';

export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

/** The configuration file a command names, or ./warden.yaml; a CliError (exit 2) when there is none. */
export function configPath(file: string | undefined): string {
  const p = path.resolve(file ?? DEFAULT_CONFIG);
  if (!fs.existsSync(p)) {
    if (file) throw new CliError(`${p}: configuration file not found`, 2);
    throw new CliError(
      `no configuration: ${p} does not exist. Pass --config FILE (see docs/configuration.md; an example is in the README).`,
      2,
    );
  }
  return p;
}

export function load(file: string | undefined): WardenConfig {
  return loadConfig(configPath(file));
}

/**
 * The whole configuration, for commands that only look at it (`databases list`, `identities`,
 * `policy explain`/`test`): they use names, kinds, groups, rules and limits, never a password,
 * key or upstream credential. So a `${NAME}` that is not set stands for a placeholder no
 * command uses to log in; any other problem (or a variable whose placeholder does not fit,
 * such as a port) is reported as `warden start` would.
 */
export function loadForInspection(file: string | undefined): WardenConfig & { readonly unsetVariables?: readonly string[] } {
  const p = configPath(file);
  try {
    return loadConfig(p);
  } catch (err) {
    if (!(err instanceof ConfigError) || !/^environment variable \S+ is not set$/.test(err.problem)) throw err;
    const unset = new Set<string>();
    const env = new Proxy(process.env, {
      get: (t, k) => {
        if (typeof k !== 'string' || t[k] !== undefined) return t[k as string];
        unset.add(k);
        return `warden-unset-${k}-not-used-by-this-command`;
      },
    });
    try {
      return { ...loadConfig(p, env), unsetVariables: [...unset] };
    } catch {
      throw err;
    }
  }
}

export function out(json: boolean | undefined, value: unknown, text: () => string): void {
  process.stdout.write(json ? JSON.stringify(value, null, 2) + '\n' : text() + '\n');
}

export const configOption = (): Option => new Option('-c, --config <file>', `configuration file (default ${DEFAULT_CONFIG})`);

// ---------------------------------------------------------------------------------------------
// The admin API client (approvals, grants, sessions, identities, reload)
// ---------------------------------------------------------------------------------------------

export const adminUrlOption = (): Option =>
  new Option('--admin-url <url>', "the running Warden's admin API, e.g. http://127.0.0.1:7070 (default: WARDEN_ADMIN_URL, else admin.host/port of the config)");

export const asOption = (): Option => new Option('--as <identity>', 'act as this identity (or WARDEN_IDENTITY); its password or token comes from WARDEN_PASSWORD');

/** Options of every command that talks to the admin API. */
export interface AdminOptions {
  config?: string;
  adminUrl?: string;
  as?: string;
}

/** Where the admin API is and how that was decided (for error messages). */
export interface AdminTarget {
  /** Base URL without a trailing slash, e.g. `http://127.0.0.1:7070`. */
  url: string;
  from: string;
}

function parseAdminUrl(v: string, from: string): AdminTarget {
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    throw new CliError(`${from}: "${v}" is not a URL (expected e.g. http://127.0.0.1:7070)`, 2);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new CliError(`${from}: expected an http:// or https:// URL, got ${u.protocol}`, 2);
  if (u.username || u.password) throw new CliError(`${from}: put no credentials in the URL (use --as and WARDEN_PASSWORD)`, 2);
  const base = `${u.origin}${u.pathname}`.replace(/\/+$/, '').replace(/\/api\/v1$/, '');
  return { url: base, from };
}

/**
 * The admin API to talk to: `--admin-url`, else `WARDEN_ADMIN_URL`, else the `admin:` section
 * of the config (`--config FILE` or ./warden.yaml). Only that section is read: no other
 * `${NAME}` of the file needs to be set.
 */
export function adminTarget(o: AdminOptions): AdminTarget {
  if (o.adminUrl !== undefined) return parseAdminUrl(o.adminUrl, '--admin-url');
  const env = process.env.WARDEN_ADMIN_URL;
  if (env) return parseAdminUrl(env, 'WARDEN_ADMIN_URL');
  if (!o.config && !fs.existsSync(path.resolve(DEFAULT_CONFIG))) {
    throw new CliError(
      'where is Warden? Pass --admin-url URL or set WARDEN_ADMIN_URL (the demo prints it), or name a config with an admin: section (--config FILE)',
      2,
    );
  }
  const part = loadConfigPart(configPath(o.config), { sections: ['admin'] });
  const admin = part.admin;
  if (!admin) throw new CliError(`${part.source}: admin: not configured — this command talks to the admin API (or pass --admin-url)`, 2);
  const host = admin.host === '0.0.0.0' || admin.host === '::' ? '127.0.0.1' : admin.host;
  return { url: `${admin.tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${admin.port}`, from: part.source };
}

/** A call to the admin API: JSON in and out; a CliError with the server's message on failure. */
export type AdminApi = <T>(method: string, apiPath: string, body?: unknown) => Promise<T>;

/**
 * A client of the admin API (`/api/v1`), authenticated as `--as IDENTITY` (or WARDEN_IDENTITY)
 * with the password or token in WARDEN_PASSWORD — never on the command line.
 */
export function adminApi(o: AdminOptions): AdminApi {
  const who = o.as ?? process.env.WARDEN_IDENTITY;
  if (!who) throw new CliError('--as IDENTITY is required (or set WARDEN_IDENTITY)', 2);
  const password = process.env.WARDEN_PASSWORD;
  if (!password) throw new CliError(`set WARDEN_PASSWORD to ${who}'s password or token (it is never taken from the command line)`, 2);
  const target = adminTarget(o);
  const base = `${target.url}/api/v1`;
  const auth = `Basic ${Buffer.from(`${who}:${password}`).toString('base64')}`;
  return async <T>(method: string, apiPath: string, body?: unknown): Promise<T> => {
    let res: Response;
    try {
      res = await fetch(`${base}${apiPath}`, {
        method,
        headers: { authorization: auth, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
        body: body !== undefined ? JSON.stringify(body) : undefined,
        signal: AbortSignal.timeout(15_000),
      });
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      throw new CliError(`cannot reach the admin API at ${target.url} (from ${target.from}): ${cause?.code ?? cause?.message ?? (err as Error).message} (is Warden running?)`, 1);
    }
    const text = await res.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = { error: text };
    }
    if (!res.ok) throw new CliError(`${(json as { error?: string }).error ?? `HTTP ${res.status}`} (HTTP ${res.status})`, 1);
    return json as T;
  };
}
