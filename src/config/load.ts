/**
 * Loads a `warden.yaml` (version 1) into the normalized WardenConfig (config/types.ts).
 *
 * Steps: read the bytes (hash them) → parse YAML → substitute `${NAME}` in string scalars →
 * check `version` → validate with the zod schema (config/schema.ts) → resolve paths against the
 * config file's directory, check TLS files, parse URLs. Any problem is a ConfigError whose
 * message is one line `<file>: <key>: <what is wrong>`; only the first problem (in document
 * order) is reported. Error texts never contain secret values.
 */
import { createHash } from 'node:crypto';
import { accessSync, constants as fsConstants, readFileSync, statSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parseDocument } from 'yaml';
import { resolveOidcPaths } from './oidc.js';
import type { z } from 'zod';
import { ConfigSchema, parsePostgresUrl, type RawConfig, type RawStore, type RawWitness } from './schema.js';
import type {
  AuditWitnessConfig,
  DatabaseConfig,
  IdentityConfig,
  RuleConfig,
  StoreConfig,
  WardenConfig,
} from './types.js';

type PathSegment = string | number;

/** A configuration problem. `message` is always one line: `<file>: <key>: <problem>`. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  /** The configuration file as it was named to the loader. */
  readonly file: string;
  /** Dotted key path (`databases.app.upstream`, `identities[1].password`); '' for the whole file. */
  readonly key: string;
  /** The problem alone, without file and key. */
  readonly problem: string;
  /** 1-based position, set for YAML syntax errors. */
  readonly line?: number;
  readonly column?: number;

  constructor(file: string, key: string, problem: string, position?: { line: number; column: number }) {
    const oneLine = problem.replace(/\s*[\r\n]+\s*/g, ' ').trim();
    const where = position ? `${file}:${position.line}:${position.column}` : file;
    super(key ? `${where}: ${key}: ${oneLine}` : `${where}: ${oneLine}`);
    this.file = file;
    this.key = key;
    this.problem = oneLine;
    this.line = position?.line;
    this.column = position?.column;
  }
}

/** Formats a key path: `databases.app.upstream`, `identities[1].name`, `sensitive.columns["a.b.c"]`. */
export function formatKeyPath(path: readonly PathSegment[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (/^[A-Za-z0-9_-]+$/.test(seg)) out += out ? `.${seg}` : seg;
    else out += `[${JSON.stringify(seg)}]`;
  }
  return out;
}

/** Reads and loads a configuration file. Throws ConfigError. */
export function loadConfig(path: string, env: NodeJS.ProcessEnv = process.env): WardenConfig {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT' ? 'no such file' :
      code === 'EACCES' ? 'permission denied' :
      code === 'EISDIR' ? 'is a directory' :
      (code ?? 'read error');
    throw new ConfigError(path, '', `cannot read the configuration file: ${why}`);
  }
  return parseInternal(bytes.toString('utf8'), sha256(bytes), path, env);
}

/**
 * Loads configuration text. `source` names it in messages and is the base for relative paths
 * (its directory); a source like `<demo>` (not a path) uses the working directory as base.
 */
export function parseConfig(text: string, source: string, env: NodeJS.ProcessEnv = process.env): WardenConfig {
  return parseInternal(text, sha256(Buffer.from(text, 'utf8')), source, env);
}

function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

function isPseudoSource(source: string): boolean {
  return /^<.*>$/.test(source);
}

function parseInternal(text: string, hash: string, source: string, env: NodeJS.ProcessEnv): WardenConfig {
  const file = source;
  const absSource = isPseudoSource(source) ? source : resolve(source);
  const baseDir = isPseudoSource(source) ? process.cwd() : dirname(absSource);

  // 1. YAML
  const doc = parseDocument(text.replace(/^\uFEFF/, ''), { uniqueKeys: true, prettyErrors: true });
  if (doc.errors.length > 0) {
    const e = doc.errors[0];
    const pos = e.linePos?.[0];
    const what = e.message.split('\n')[0].replace(/\s*at line \d+, column \d+:?\s*$/, '');
    throw new ConfigError(file, '', `YAML syntax error: ${what}`, pos ? { line: pos.line, column: pos.col } : undefined);
  }
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    throw new ConfigError(file, '', `YAML error: ${(err as Error).message.split('\n')[0]}`);
  }
  if (data === null || data === undefined) {
    throw new ConfigError(file, '', 'the file is empty (expected a mapping starting with version: 1)');
  }
  if (!isPlainObject(data)) {
    throw new ConfigError(file, '', `expected a mapping at the top level, got ${describeType(data)}`);
  }

  // 2. ${NAME} substitution on string scalars
  const envErrors: Problem[] = [];
  const substituted = substituteTree(data, [], env, envErrors) as Record<string, unknown>;

  // 3. version first: a different version means the rest cannot be judged
  const versionEnvError = envErrors.find((p) => p.path.length === 1 && p.path[0] === 'version');
  if (versionEnvError) throw new ConfigError(file, 'version', versionEnvError.message);
  if (!('version' in substituted)) throw new ConfigError(file, 'version', 'required (this Warden reads version 1)');
  const version = substituted.version;
  if (version !== 1) {
    const shown = typeof version === 'number' || typeof version === 'string' ? ` ${JSON.stringify(version)}` : '';
    throw new ConfigError(file, 'version', `unsupported version${shown} (this Warden reads version 1)`);
  }

  // 4. schema
  const result = ConfigSchema.safeParse(substituted, { error: issueMessage });
  const problems: Problem[] = [...envErrors];
  if (!result.success) problems.push(...result.error.issues.map((iss) => issueToProblem(iss, substituted)));
  if (problems.length > 0) {
    const first = firstInDocumentOrder(problems, substituted);
    throw new ConfigError(file, formatKeyPath(first.path), first.message);
  }

  // 5. normalize
  return normalize(result.data as RawConfig, { file, absSource, baseDir, hash });
}

// ---------------------------------------------------------------------------------------------
// Environment substitution
// ---------------------------------------------------------------------------------------------

interface Problem {
  path: PathSegment[];
  message: string;
}

/** Keys whose value is a URL: `${NAME}` in its user-info part is percent-encoded. */
function isUrlKey(path: readonly PathSegment[]): boolean {
  return (
    (path.length === 3 && path[0] === 'databases' && path[2] === 'upstream') ||
    (path.length === 2 && (path[0] === 'state' || path[0] === 'audit') && path[1] === 'store') ||
    ((path.length === 2 || path.length === 3) && path[0] === 'audit' && path[1] === 'witness')
  );
}

function substituteTree(value: unknown, path: PathSegment[], env: NodeJS.ProcessEnv, errors: Problem[]): unknown {
  if (typeof value === 'string') return substituteString(value, path, env, errors);
  if (Array.isArray(value)) return value.map((v, i) => substituteTree(v, [...path, i], env, errors));
  if (isPlainObject(value)) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      Object.defineProperty(out, k, { value: substituteTree(v, [...path, k], env, errors), enumerable: true, writable: true, configurable: true });
    }
    return out;
  }
  return value;
}

const REFERENCE = /\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$\{/g;

/**
 * `${NAME}` → the value of NAME; `$${` → a literal `${`. Any other `${` is an error. In a URL's
 * user-info part (between `://` and `@`) the substituted value is percent-encoded.
 */
export function substituteString(
  template: string,
  path: readonly PathSegment[],
  env: NodeJS.ProcessEnv,
  errors: Problem[],
): string {
  if (!template.includes('${')) return template;
  let userinfoStart = -1;
  let userinfoEnd = -1;
  if (isUrlKey(path)) {
    const scheme = template.indexOf('://');
    if (scheme >= 0) {
      const rest = template.slice(scheme + 3);
      const authorityEnd = scheme + 3 + (rest.search(/[/?#]/) < 0 ? rest.length : rest.search(/[/?#]/));
      const at = template.lastIndexOf('@', authorityEnd);
      if (at > scheme) {
        userinfoStart = scheme + 3;
        userinfoEnd = at;
      }
    }
  }
  let out = '';
  let last = 0;
  for (const m of template.matchAll(REFERENCE)) {
    const index = m.index ?? 0;
    out += template.slice(last, index);
    last = index + m[0].length;
    if (m[0] === '$${') {
      out += '${';
    } else if (m[1] === undefined) {
      errors.push({ path: [...path], message: 'malformed variable reference: expected ${NAME} (write $${ for a literal ${)' });
      out += m[0];
    } else {
      const name = m[1];
      const value = env[name];
      if (value === undefined) {
        errors.push({ path: [...path], message: `environment variable ${name} is not set` });
        out += m[0];
      } else {
        out += index >= userinfoStart && index < userinfoEnd ? encodeURIComponent(value) : value;
      }
    }
  }
  return out + template.slice(last);
}

// ---------------------------------------------------------------------------------------------
// zod issues → problems
// ---------------------------------------------------------------------------------------------

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function describeType(v: unknown): string {
  if (v === null || v === undefined) return 'an empty value';
  if (Array.isArray(v)) return 'a list';
  switch (typeof v) {
    case 'string': return 'a string';
    case 'number': return 'a number';
    case 'boolean': return 'a boolean';
    case 'object': return 'a mapping';
    default: return typeof v;
  }
}

const EXPECTED: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  int: 'an integer',
  boolean: 'true or false',
  array: 'a list',
  object: 'a mapping',
  record: 'a mapping',
};

/** The per-parse zod error map: messages that never echo a value of unknown sensitivity. */
function issueMessage(iss: z.core.$ZodRawIssue): string | undefined {
  switch (iss.code) {
    case 'invalid_type': {
      if (iss.input === undefined) return 'required';
      if (iss.expected === 'int' && typeof iss.input === 'number') return 'must be an integer';
      return `expected ${EXPECTED[iss.expected] ?? iss.expected}, got ${describeType(iss.input)}`;
    }
    case 'invalid_value': {
      const options = iss.values.map((v) => String(v)).join(', ');
      const got = typeof iss.input === 'string' && iss.input.length <= 40 && !/[\r\n]/.test(iss.input)
        ? `"${iss.input}"`
        : describeType(iss.input);
      return iss.values.length === 1 ? `expected ${options}, got ${got}` : `expected one of ${options}, got ${got}`;
    }
    case 'too_small': {
      const min = Number(iss.minimum);
      if (iss.origin === 'array' || iss.origin === 'set') return min <= 1 ? 'must not be empty' : `must have at least ${min} items`;
      if (iss.origin === 'string') return min <= 1 ? 'must not be empty' : `must be at least ${min} characters`;
      return iss.inclusive === false ? `must be greater than ${min}` : `must be at least ${min}`;
    }
    case 'too_big': {
      const max = Number(iss.maximum);
      if (iss.origin === 'array' || iss.origin === 'set') return `must have at most ${max} items`;
      if (iss.origin === 'string') return `must be at most ${max} characters`;
      return iss.inclusive === false ? `must be less than ${max}` : `must be at most ${max}`;
    }
    case 'unrecognized_keys':
      return 'unknown key';
    default:
      return 'invalid value';
  }
}

function issueToProblem(iss: z.core.$ZodIssue, data: unknown): Problem {
  let path = iss.path.filter((s): s is string | number => typeof s !== 'symbol');
  if (iss.code === 'unrecognized_keys' && iss.keys.length > 0) path = [...path, iss.keys[0]];
  // A single string given where a list is accepted: point at the string, not at "[0]".
  const last = path[path.length - 1];
  if (typeof last === 'number' && last === 0 && typeof valueAt(data, path.slice(0, -1)) === 'string') {
    path = path.slice(0, -1);
  }
  return { path, message: iss.message };
}

function valueAt(data: unknown, path: readonly PathSegment[]): unknown {
  let cur = data;
  for (const seg of path) {
    if (Array.isArray(cur) && typeof seg === 'number') cur = cur[seg];
    else if (isPlainObject(cur) && typeof seg === 'string' && Object.prototype.hasOwnProperty.call(cur, seg)) cur = cur[seg];
    else return undefined;
  }
  return cur;
}

/** Position of a path in the document: indexes of each key among its siblings. */
function documentOrderKey(data: unknown, path: readonly PathSegment[]): number[] {
  const key: number[] = [];
  let cur = data;
  for (const seg of path) {
    if (Array.isArray(cur) && typeof seg === 'number') {
      key.push(seg);
      cur = cur[seg];
    } else if (isPlainObject(cur) && typeof seg === 'string') {
      const idx = Object.keys(cur).indexOf(seg);
      key.push(idx < 0 ? Number.MAX_SAFE_INTEGER : idx); // missing keys sort after present ones
      cur = idx < 0 ? undefined : cur[seg];
    } else {
      key.push(Number.MAX_SAFE_INTEGER);
      cur = undefined;
    }
  }
  return key;
}

function firstInDocumentOrder(problems: Problem[], data: unknown): Problem {
  const keyed = problems.map((p, i) => ({ p, i, k: documentOrderKey(data, p.path) }));
  keyed.sort((a, b) => {
    const n = Math.min(a.k.length, b.k.length);
    for (let j = 0; j < n; j++) if (a.k[j] !== b.k[j]) return a.k[j] - b.k[j];
    // Same prefix: the deeper (more specific) problem first; ties keep their order
    // (environment problems come before schema problems they cause).
    return b.k.length - a.k.length || a.i - b.i;
  });
  return keyed[0].p;
}

// ---------------------------------------------------------------------------------------------
// Normalization
// ---------------------------------------------------------------------------------------------

interface Context {
  file: string;
  absSource: string;
  baseDir: string;
  hash: string;
}

function resolvePath(ctx: Context, p: string): string {
  return isAbsolute(p) ? resolve(p) : resolve(ctx.baseDir, p);
}

/** Resolves a path that must name a readable file now. */
function readableFile(ctx: Context, key: string, p: string): string {
  const abs = resolvePath(ctx, p);
  let isFile: boolean;
  try {
    isFile = statSync(abs).isFile();
  } catch {
    throw new ConfigError(ctx.file, key, `file not found: ${abs}`);
  }
  if (!isFile) throw new ConfigError(ctx.file, key, `not a regular file: ${abs}`);
  try {
    accessSync(abs, fsConstants.R_OK);
  } catch {
    throw new ConfigError(ctx.file, key, `file is not readable: ${abs}`);
  }
  return abs;
}

function normalizeStore(ctx: Context, store: RawStore): StoreConfig {
  if (store.kind === 'postgres' || store.location === ':memory:') return { kind: store.kind, location: store.location };
  return { kind: store.kind, location: resolvePath(ctx, store.location) };
}

/**
 * Witness entries with file paths resolved. A witness must be somewhere else than
 * the store: a file witness that is the store's file (or its checkpoints, -wal or
 * -shm file) would be cut with it, and would corrupt it. Duplicates are refused.
 */
function normalizeWitnesses(ctx: Context, raw: readonly RawWitness[], store: StoreConfig): AuditWitnessConfig[] {
  const out: AuditWitnessConfig[] = [];
  const seen = new Map<string, number>();
  raw.forEach((w, i) => {
    const key = raw.length === 1 ? 'audit.witness' : `audit.witness[${i}]`;
    const entry: AuditWitnessConfig =
      w.kind === 'file' ? { kind: 'file', path: resolvePath(ctx, w.location) } : w.kind === 'stdout' ? { kind: 'stdout' } : { kind: w.kind, url: w.url };
    if (entry.kind === 'file' && store.kind !== 'postgres') {
      const taken = [store.location, `${store.location}.checkpoints.jsonl`, `${store.location}-wal`, `${store.location}-shm`, `${store.location}-journal`];
      if (taken.includes(entry.path)) {
        throw new ConfigError(ctx.file, key, `file:${entry.path} is the audit store's own file; a witness must be another file, ideally on another volume`);
      }
    }
    const id = entry.kind === 'file' ? `file:${entry.path}` : entry.kind === 'stdout' ? 'stdout' : entry.url;
    const first = seen.get(id);
    if (first !== undefined) throw new ConfigError(ctx.file, key, `duplicate witness ${entry.kind === 'file' || entry.kind === 'stdout' ? id : entry.kind} (already audit.witness[${first}])`);
    seen.set(id, i);
    out.push(entry);
  });
  return out;
}

function stripUndefined<T extends object>(obj: T): T {
  for (const k of Object.keys(obj) as (keyof T)[]) if (obj[k] === undefined) delete obj[k];
  return obj;
}

function normalize(raw: RawConfig, ctx: Context): WardenConfig {
  const listen: WardenConfig['listen'] = {
    host: raw.listen.host,
    port: raw.listen.port,
    maxMessageSize: raw.listen.max_message_size,
  };
  if (raw.listen.max_connections !== undefined) listen.maxConnections = raw.listen.max_connections;
  if (raw.listen.tls) {
    listen.tls = {
      cert: readableFile(ctx, 'listen.tls.cert', raw.listen.tls.cert),
      key: readableFile(ctx, 'listen.tls.key', raw.listen.tls.key),
      require: raw.listen.tls.require,
    };
  }

  const databases: Record<string, DatabaseConfig> = {};
  for (const [name, db] of Object.entries(raw.databases)) {
    const parsed = parsePostgresUrl(db.upstream);
    if (!parsed.ok) throw new ConfigError(ctx.file, formatKeyPath(['databases', name, 'upstream']), `upstream URL ${parsed.error}`);
    const u = parsed.value;
    const entry: DatabaseConfig = {
      name,
      upstream: stripUndefined({
        host: u.host,
        port: u.port,
        user: u.user,
        password: u.password,
        database: u.database,
        redactedUrl: u.redactedUrl,
      }),
      environment: db.environment,
      tls: db.tls,
      ca: db.ca === undefined ? undefined : readableFile(ctx, formatKeyPath(['databases', name, 'ca']), db.ca),
      trustedFunctions: db.trusted_functions,
    };
    Object.defineProperty(databases, name, { value: stripUndefined(entry), enumerable: true, writable: true, configurable: true });
  }

  const identities: IdentityConfig[] = raw.identities.map((id) =>
    stripUndefined({ name: id.name, kind: id.kind, groups: id.groups, role: id.role, maxConnections: id.max_connections, password: id.password, scram: id.scram }),
  );

  const rules: RuleConfig[] = raw.rules.map((r) =>
    stripUndefined({ name: r.name, match: r.match, action: r.action, reason: r.reason, approvers: r.approvers, strict: r.strict }),
  );

  const config: WardenConfig = {
    version: 1,
    source: ctx.absSource,
    hash: ctx.hash,
    listen,
    databases,
    identities,
    sensitive: stripUndefined({
      columns: raw.sensitive.columns,
      detect: raw.sensitive.detect,
      maskers: raw.sensitive.maskers,
      key: raw.sensitive.key,
    }),
    rules,
    default: raw.default,
    approvals: stripUndefined({
      mode: raw.approvals.mode,
      timeoutMs: raw.approvals.timeout,
      textCap: raw.approvals.text_cap,
      webhook: raw.approvals.webhook,
    }),
  };
  if (raw.admin) {
    config.admin = stripUndefined({
      host: raw.admin.host,
      port: raw.admin.port,
      auditors: raw.admin.auditors,
      operators: raw.admin.operators,
      tls: raw.admin.tls ? { cert: resolvePath(ctx, raw.admin.tls.cert), key: resolvePath(ctx, raw.admin.tls.key) } : undefined,
    });
  }
  if (raw.state) config.state = { store: normalizeStore(ctx, raw.state.store) };
  if (raw.oidc) config.oidc = resolveOidcPaths(raw.oidc, ctx.baseDir);
  if (raw.audit) {
    config.audit = stripUndefined({
      store: normalizeStore(ctx, raw.audit.store),
      onFailure: raw.audit.on_failure,
      durability: raw.audit.durability,
      instance: raw.audit.instance,
      signingKey: raw.audit.signing_key !== undefined ? resolvePath(ctx, raw.audit.signing_key) : undefined,
      checkpointEvery: raw.audit.checkpoint_every,
      checkpointIntervalMs: raw.audit.checkpoint_interval ?? 60_000,
      retentionMs: raw.audit.retention,
      stream: raw.audit.stream.map((x) =>
        x === 'stdout' ? { kind: 'stdout' as const } : 'webhook' in x ? { kind: 'webhook' as const, url: x.webhook } : { kind: 'otlp' as const, url: x.otlp },
      ),
      witness: raw.audit.witness ? normalizeWitnesses(ctx, raw.audit.witness, normalizeStore(ctx, raw.audit.store)) : undefined,
    });
  }
  return config;
}
