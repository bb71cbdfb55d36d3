/**
 * What a configuration reload (SIGHUP, `POST /api/v1/reload`, `warden reload`) may change
 * in a running Warden, and what only a restart applies. Pure: app.ts does the swap.
 *
 * Restart-only keys are those bound to something opened once when Warden starts: the
 * listening socket (`listen.host`, `listen.port`, `listen.tls`, `listen.max_connections`),
 * the admin listener (`admin`), the audit log (`audit`), the state store (`state`), the
 * OIDC verifier (`oidc`), and the connection settings of a database that already exists
 * (`databases.NAME.upstream`, `.tls`, `.ca`: Warden's catalog connection to it stays
 * open). A reload that changes them applies everything else, keeps their running
 * values, and names them.
 */
import type { DatabaseConfig, WardenConfig } from './types.js';

/** Stable JSON of a value (object keys sorted), for comparisons. */
function stable(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) =>
    x && typeof x === 'object' && !Array.isArray(x) ? Object.fromEntries(Object.entries(x as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : x,
  );
}

const same = (a: unknown, b: unknown): boolean => stable(a) === stable(b);

/** A database's connection settings: what its open connections were made with. */
function connectionOf(d: DatabaseConfig): unknown {
  return { upstream: d.upstream, tls: d.tls, ca: d.ca };
}

/**
 * The keys (as written in warden.yaml) whose change in `next` needs a restart, in a stable
 * order; empty when a reload applies all of `next`.
 */
export function restartNeeded(running: WardenConfig, next: WardenConfig): string[] {
  const keys: string[] = [];
  const l1 = running.listen;
  const l2 = next.listen;
  if (l1.host !== l2.host) keys.push('listen.host');
  if (l1.port !== l2.port) keys.push('listen.port');
  if (!same(l1.tls, l2.tls)) keys.push('listen.tls');
  if (l1.maxConnections !== l2.maxConnections) keys.push('listen.max_connections');
  if (!same(running.admin, next.admin)) keys.push('admin');
  if (!same(running.audit, next.audit)) keys.push('audit');
  if (!same(running.state, next.state)) keys.push('state');
  if (!same(running.oidc, next.oidc)) keys.push('oidc');
  for (const name of Object.keys(running.databases).sort()) {
    const a = running.databases[name]!;
    const b = Object.hasOwn(next.databases, name) ? next.databases[name] : undefined;
    if (b && !same(connectionOf(a), connectionOf(b))) keys.push(`databases.${name}.upstream`);
  }
  return keys;
}

/**
 * The configuration a reload runs on: `next`, except that the restart-only keys keep their
 * running values (see {@link restartNeeded}). `source` and `hash` are `next`'s.
 */
export function effectiveConfig(running: WardenConfig, next: WardenConfig): WardenConfig {
  const databases: Record<string, DatabaseConfig> = {};
  for (const [name, d] of Object.entries(next.databases)) {
    const old = Object.hasOwn(running.databases, name) ? running.databases[name] : undefined;
    if (!old || same(connectionOf(old), connectionOf(d))) {
      databases[name] = d;
      continue;
    }
    const kept: DatabaseConfig = { ...d, upstream: old.upstream, tls: old.tls };
    if (old.ca !== undefined) kept.ca = old.ca;
    else delete kept.ca;
    databases[name] = kept;
  }
  const listen: WardenConfig['listen'] = { ...next.listen, host: running.listen.host, port: running.listen.port };
  if (running.listen.tls) listen.tls = running.listen.tls;
  else delete listen.tls;
  if (running.listen.maxConnections !== undefined) listen.maxConnections = running.listen.maxConnections;
  else delete listen.maxConnections;
  const out: WardenConfig = { ...next, listen, databases };
  for (const k of ['admin', 'audit', 'state', 'oidc'] as const) {
    if (running[k] !== undefined) (out as unknown as Record<string, unknown>)[k] = running[k];
    else delete out[k];
  }
  return out;
}

/** What a reload did; the API's answer and, in part, the audit record's. */
export interface ReloadResult {
  readonly ok: boolean;
  /** When it ended (ISO 8601). */
  readonly at: string;
  readonly source: string;
  /** The running configuration's file hash before the reload. */
  readonly previousHash: string;
  /** The new file's hash (absent when the file could not be read or validated). */
  readonly hash?: string;
  /** Keys whose change was not applied: they need a restart. */
  readonly restartNeeded: readonly string[];
  /** The file's content did not change (the reload still re-read `${VAR}`s and files). */
  readonly unchanged?: boolean;
  /** Why the file was refused (no secrets in it). */
  readonly error?: string;
}

/** The last reload's state, for readiness (`/readyz` is 503 while the last reload failed). */
export interface ReloadState {
  ok: boolean;
  at?: string;
  error?: string;
}
