/**
 * What `warden mcp` (stdio) loads of the configuration file: only what an agent's
 * own MCP process needs, never Warden's secrets. The process is started by the
 * agent's MCP client, so anything it holds the agent's host can read.
 *
 * It needs:
 * - the listener's address and whether it offers TLS (`listen.host`, `listen.port`,
 *   `listen.tls` present or not — not the certificate or key files);
 * - the databases' names and environments (`list_databases`, the default database),
 *   their `trusted_functions` (explain);
 * - the identities' names, kinds, groups and roles (the policy `explain_policy` and
 *   `describe_table` show is the caller's), and the policy sections: `sensitive`
 *   (without its `key`), `rules`, `default`, `limits`, `approvals`, `oidc` (the claim
 *   names that say who a JWT is; its `jwks` is not read here).
 *
 * It does not load: upstream URLs (their user and password), `databases.*.ca`,
 * identities' passwords and SCRAM verifiers, `sensitive.key`, `listen.tls` files,
 * and the `admin`, `state` and `audit` sections (the state store holds tokens and
 * approvals: an agent's process must not be able to write to it). `${NAME}`
 * variables are resolved only in what is kept; one that is not set there stands
 * for a placeholder (as for `warden policy explain`), so the agent's environment
 * needs none of Warden's secrets.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml, stringify } from 'yaml';
import type { WardenConfig } from '../config/types.js';
import { ConfigError, parseConfig } from '../config/load.js';

export interface AgentConfig {
  config: WardenConfig;
  /** Whether Warden's listener offers TLS (`listen.tls` is configured). */
  listenTls: boolean;
  /** `${NAME}` variables of the kept sections that are not set (placeholders stand for them). */
  unsetVariables: string[];
}

const KEPT_SECTIONS = ['version', 'listen', 'databases', 'identities', 'sensitive', 'rules', 'default', 'limits', 'approvals', 'oidc'] as const;
const IDENTITY_FIELDS = ['name', 'kind', 'groups', 'role', 'max_connections'] as const;
/** Stands for what is not loaded (a password, the masking key). Never used to log in. */
const PLACEHOLDER = 'not-loaded-by-warden-mcp';

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The upstream's user name when the URL is written out (for `$user` in the search path of explain), else a placeholder. */
function upstreamUser(url: unknown): string {
  if (typeof url !== 'string' || url.includes('${')) return 'warden';
  try {
    return decodeURIComponent(new URL(url).username) || 'warden';
  } catch {
    return 'warden';
  }
}

/** The parts of the file `warden mcp` uses (see the module doc), as a tree to load. */
export function agentTree(whole: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of KEPT_SECTIONS) if (Object.hasOwn(whole, k)) out[k] = whole[k];
  if (isObject(whole.listen)) {
    const { tls: _tls, ...listen } = whole.listen;
    out.listen = listen;
  }
  if (isObject(whole.databases)) {
    const dbs: Record<string, unknown> = {};
    for (const [name, db] of Object.entries(whole.databases)) {
      if (!isObject(db)) {
        dbs[name] = db;
        continue;
      }
      const user = upstreamUser(db.upstream);
      dbs[name] = {
        upstream: `postgres://${encodeURIComponent(user)}@upstream.not-loaded.invalid/${encodeURIComponent(name)}`,
        ...(db.environment !== undefined ? { environment: db.environment } : {}),
        ...(db.trusted_functions !== undefined ? { trusted_functions: db.trusted_functions } : {}),
      };
    }
    out.databases = dbs;
  }
  if (Array.isArray(whole.identities)) {
    out.identities = whole.identities.map((i: unknown) => {
      if (!isObject(i)) return i;
      const kept: Record<string, unknown> = {};
      for (const f of IDENTITY_FIELDS) if (Object.hasOwn(i, f)) kept[f] = i[f];
      kept.password = PLACEHOLDER;
      return kept;
    });
  }
  if (isObject(whole.sensitive) && Object.hasOwn(whole.sensitive, 'key')) out.sensitive = { ...whole.sensitive, key: PLACEHOLDER };
  return out;
}

/** Loads the parts of `path` that `warden mcp` uses. Throws ConfigError for a problem in them. */
export function loadAgentConfig(path: string, env: NodeJS.ProcessEnv = process.env): AgentConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(path, '', `cannot read the configuration file: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  let whole: unknown;
  try {
    whole = parseYaml(text);
  } catch {
    // Let the real loader report the YAML problem with its line and column.
    whole = undefined;
  }
  if (!isObject(whole)) return { ...loadWith(text, path, env), listenTls: false };
  const listenTls = isObject(whole.listen) && whole.listen.tls !== undefined && whole.listen.tls !== null;
  return { ...loadWith(stringify(agentTree(whole)), path, env), listenTls };
}

function loadWith(text: string, path: string, env: NodeJS.ProcessEnv): Omit<AgentConfig, 'listenTls'> {
  const unset = new Set<string>();
  const lenient = new Proxy(env, {
    get: (t, k) => {
      if (typeof k !== 'string' || t[k] !== undefined) return t[k as string];
      unset.add(k);
      return `warden-unset-${k}-not-used-by-warden-mcp`;
    },
  });
  const config = parseConfig(text, path, lenient);
  // Nothing secret stays in memory: the placeholders are not credentials, and are dropped.
  for (const i of config.identities) delete (i as { password?: string }).password;
  for (const db of Object.values(config.databases)) delete (db.upstream as { password?: string }).password;
  return { config, unsetVariables: [...unset] };
}
