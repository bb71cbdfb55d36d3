/**
 * Loads a `warden.yaml` (version 1) into the normalized WardenConfig (config/types.ts).
 *
 * Steps: read the bytes (hash them) → parse YAML → substitute `${NAME}` in string scalars →
 * check `version` → validate with the zod schema (config/schema.ts) → resolve paths against the
 * config file's directory, check TLS files, parse URLs. Any problem is a ConfigError whose
 * message is one line `<file>: <key>: <what is wrong>`; loadConfig reports the first problem (in
 * document order), checkConfig all of them. Error texts never contain secret values.
 * loadConfigPart loads only the sections a command uses (and resolves `${NAME}` only there).
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
  LimitConfig,
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
    throw readError(path, err);
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

/** One problem of a configuration file: the key (dotted path, '' for the whole file) and what is wrong. */
export interface ConfigProblem {
  path: string;
  message: string;
  line?: number;
  column?: number;
}

/** What `checkConfig` finds: every problem at once, and the configuration when there is none. */
export interface ConfigCheck {
  source: string;
  hash?: string;
  problems: ConfigProblem[];
  config?: WardenConfig;
}

/**
 * Checks a configuration file and reports every problem it can find at once (YAML syntax and a
 * wrong version stop the check; otherwise every unset variable, every schema problem, every group
 * named by approvers or admin groups that no identity has, and the first problem of
 * normalization such as a missing TLS file). Never throws a ConfigError.
 */
export function checkConfig(path: string, env: NodeJS.ProcessEnv = process.env): ConfigCheck {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (err) {
    const e = readError(path, err);
    return { source: path, problems: [{ path: e.key, message: e.problem }] };
  }
  const hash = sha256(bytes);
  const r = parseStaged(bytes.toString('utf8'), hash, path, env, { groups: true });
  const source = isPseudoSource(path) ? path : resolve(path);
  return 'config' in r ? { source, hash, problems: [], config: r.config } : { source, hash, problems: r.problems };
}

/** Sections of the file a command may load alone (see {@link loadConfigPart}). */
export type ConfigSection = 'admin' | 'identities' | 'state' | 'audit';

/** A part of the configuration: the sections asked for, and the names of the databases. */
export type ConfigPart<K extends ConfigSection> = Pick<WardenConfig, 'version' | 'source' | 'hash' | K> & {
  /** The names under `databases:` (their upstreams are neither resolved nor checked). */
  databaseNames: string[];
};

/**
 * Loads only what a command uses: `version`, the given top-level sections (only the given
 * identities, when `identities` names some), and the database names. `${NAME}` is resolved,
 * and the schema checked, only there: an approver running `approvals list` needs neither the
 * upstream's password nor the other identities'. Throws ConfigError for a problem in those parts.
 */
export function loadConfigPart<K extends ConfigSection>(
  path: string,
  part: { sections: readonly K[]; identities?: readonly string[] },
  env: NodeJS.ProcessEnv = process.env,
): ConfigPart<K> {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (err) {
    throw readError(path, err);
  }
  const file = path;
  const ctx: Context = { file, absSource: resolve(path), baseDir: dirname(resolve(path)), hash: sha256(bytes) };
  const parsed = parseYaml(bytes.toString('utf8'));
  if (!parsed.ok) throw toError(file, parsed.problem);
  const whole = parsed.data;
  const pruned: Record<string, unknown> = {};
  if ('version' in whole) pruned.version = whole.version;
  for (const s of part.sections) {
    if (!Object.hasOwn(whole, s)) continue;
    let v = whole[s];
    if (s === 'identities' && part.identities && Array.isArray(v)) {
      const names = part.identities;
      v = v.filter((i: unknown) => isPlainObject(i) && typeof i.name === 'string' && names.includes(i.name));
    }
    pruned[s] = v;
  }
  const envErrors: Problem[] = [];
  const substituted = substituteTree(pruned, [], env, envErrors) as Record<string, unknown>;
  const versionProblem = checkVersion(substituted, envErrors);
  if (versionProblem) throw toError(file, versionProblem);
  const mask: Record<string, true> = { version: true };
  for (const s of part.sections) mask[s] = true;
  const schema = ConfigSchema.pick(mask as { version: true });
  const result = schema.safeParse(substituted, { error: issueMessage });
  const problems: Problem[] = [...envErrors];
  if (!result.success) problems.push(...result.error.issues.map((iss) => issueToProblem(iss, substituted)));
  if (problems.length > 0) {
    const first = firstInDocumentOrder(problems, substituted);
    throw new ConfigError(file, formatKeyPath(first.path), first.message);
  }
  const raw = { ...partDefaults(), ...(result.data as Partial<RawConfig>) } as RawConfig;
  const config = normalize(raw, ctx);
  const out: Record<string, unknown> = { version: 1, source: config.source, hash: config.hash };
  for (const s of part.sections) if (config[s] !== undefined) out[s] = config[s];
  out.databaseNames = isPlainObject(whole.databases) ? Object.keys(whole.databases) : [];
  return out as ConfigPart<K>;
}

/** The defaults of the sections a partial load leaves out (no databases). */
function partDefaults(): Omit<RawConfig, 'version'> {
  const d = ConfigSchema.pick({ listen: true, identities: true, sensitive: true, rules: true, default: true, limits: true, approvals: true }).parse({});
  return { ...d, databases: {} };
}

function readError(path: string, err: unknown): ConfigError {
  const code = (err as NodeJS.ErrnoException).code;
  const why =
    code === 'ENOENT' ? 'no such file' :
    code === 'EACCES' ? 'permission denied' :
    code === 'EISDIR' ? 'is a directory' :
    (code ?? 'read error');
  return new ConfigError(path, '', `cannot read the configuration file: ${why}`);
}

function toError(file: string, p: ConfigProblem): ConfigError {
  return new ConfigError(file, p.path, p.message, p.line !== undefined && p.column !== undefined ? { line: p.line, column: p.column } : undefined);
}

function parseInternal(text: string, hash: string, source: string, env: NodeJS.ProcessEnv): WardenConfig {
  const r = parseStaged(text, hash, source, env, { groups: false });
  if ('config' in r) return r.config;
  throw toError(source, r.problems[0]);
}

/** YAML text → its top-level mapping, or the one problem that stops everything. */
function parseYaml(text: string): { ok: true; data: Record<string, unknown> } | { ok: false; problem: ConfigProblem } {
  const doc = parseDocument(text.replace(/^\uFEFF/, ''), { uniqueKeys: true, prettyErrors: true });
  if (doc.errors.length > 0) {
    const e = doc.errors[0];
    const pos = e.linePos?.[0];
    const what = e.message.split('\n')[0].replace(/\s*at line \d+, column \d+:?\s*$/, '');
    return { ok: false, problem: { path: '', message: `YAML syntax error: ${what}`, ...(pos ? { line: pos.line, column: pos.col } : {}) } };
  }
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    return { ok: false, problem: { path: '', message: `YAML error: ${(err as Error).message.split('\n')[0]}` } };
  }
  if (data === null || data === undefined) {
    return { ok: false, problem: { path: '', message: 'the file is empty (expected a mapping starting with version: 1)' } };
  }
  if (!isPlainObject(data)) {
    return { ok: false, problem: { path: '', message: `expected a mapping at the top level, got ${describeType(data)}` } };
  }
  return { ok: true, data };
}

/** `version` first: a different version means the rest cannot be judged. */
function checkVersion(substituted: Record<string, unknown>, envErrors: readonly Problem[]): ConfigProblem | undefined {
  const versionEnvError = envErrors.find((p) => p.path.length === 1 && p.path[0] === 'version');
  if (versionEnvError) return { path: 'version', message: versionEnvError.message };
  if (!('version' in substituted)) return { path: 'version', message: 'required (this Warden reads version 1)' };
  const version = substituted.version;
  if (version !== 1) {
    const shown = typeof version === 'number' || typeof version === 'string' ? ` ${JSON.stringify(version)}` : '';
    return { path: 'version', message: `unsupported version${shown} (this Warden reads version 1)` };
  }
  return undefined;
}

/** Every problem of a configuration text, in document order; or the loaded configuration. */
function parseStaged(
  text: string,
  hash: string,
  source: string,
  env: NodeJS.ProcessEnv,
  o: { groups: boolean },
): { config: WardenConfig } | { problems: ConfigProblem[] } {
  const file = source;
  const absSource = isPseudoSource(source) ? source : resolve(source);
  const baseDir = isPseudoSource(source) ? process.cwd() : dirname(absSource);

  // 1. YAML
  const parsed = parseYaml(text);
  if (!parsed.ok) return { problems: [parsed.problem] };
  const data = parsed.data;

  // 2. ${NAME} substitution on string scalars
  const envErrors: Problem[] = [];
  const substituted = substituteTree(data, [], env, envErrors) as Record<string, unknown>;

  // 3. version first: a different version means the rest cannot be judged
  const versionProblem = checkVersion(substituted, envErrors);
  if (versionProblem) return { problems: [versionProblem] };

  // 4. schema, and groups nobody is in
  const result = ConfigSchema.safeParse(substituted, { error: issueMessage });
  const problems: Problem[] = [...envErrors];
  if (!result.success) {
    // A key whose variable is not set has that problem, not the schema's complaint about `${NAME}`.
    const envPaths = new Set(envErrors.map((p) => formatKeyPath(p.path)));
    for (const p of result.error.issues.map((iss) => issueToProblem(iss, substituted))) {
      if (!envPaths.has(formatKeyPath(p.path))) problems.push(p);
    }
  }
  // A group nobody is in, unless the key holding it already has a problem of its own.
  const isPrefix = (a: readonly PathSegment[], b: readonly PathSegment[]): boolean => a.length <= b.length && a.every((x, i) => x === b[i]);
  const other = [...problems];
  if (o.groups) problems.push(...unknownGroups(substituted).filter((g) => !other.some((p) => isPrefix(p.path, g.path) || isPrefix(g.path, p.path))));
  if (problems.length > 0) return { problems: sortInDocumentOrder(problems, substituted).map((p) => ({ path: formatKeyPath(p.path), message: p.message })) };

  // 5. normalize
  try {
    return { config: normalize(result.data as RawConfig, { file, absSource, baseDir, hash }) };
  } catch (err) {
    if (err instanceof ConfigError) return { problems: [{ path: err.key, message: err.problem }] };
    throw err;
  }
}

/**
 * Groups that approve statements (`rules[].approvers.groups`) or use the admin API
 * (`admin.auditors`, `admin.operators`) must be some identity's: those people approve and
 * operate as configured identities, so a group nobody is in is a typo or a rule nobody can
 * satisfy (it fails closed: nothing it holds can be approved). `config check` reports them as
 * errors; `warden start` logs them as warnings (see {@link unknownGroupProblems}).
 */
export function unknownGroupProblems(config: WardenConfig): ConfigProblem[] {
  return unknownGroups(config as unknown as Record<string, unknown>).map((p) => ({ path: formatKeyPath(p.path), message: p.message }));
}

function unknownGroups(data: Record<string, unknown>): Problem[] {
  const have = new Set<string>();
  if (Array.isArray(data.identities)) {
    for (const i of data.identities) if (isPlainObject(i) && Array.isArray(i.groups)) for (const g of i.groups) if (typeof g === 'string') have.add(g);
  }
  const known = have.size > 0 ? `groups identities are in: ${[...have].sort().join(', ')}` : 'no identity is in any group';
  const out: Problem[] = [];
  const check = (list: unknown, path: PathSegment[], what: string): void => {
    const items = typeof list === 'string' ? [list] : Array.isArray(list) ? list : [];
    items.forEach((g, i) => {
      if (typeof g !== 'string' || g === '' || have.has(g)) return;
      out.push({ path: typeof list === 'string' ? path : [...path, i], message: `no identity is in group "${g}", so ${what} (${known})` });
    });
  };
  if (isPlainObject(data.admin)) {
    check(data.admin.auditors, ['admin', 'auditors'], 'nobody can read the audit log through the admin API as it');
    check(data.admin.operators, ['admin', 'operators'], 'nobody can operate Warden through the admin API as it');
    if (isPlainObject(data.admin.console)) check(data.admin.console.groups, ['admin', 'console', 'groups'], 'nobody can log in to the web console as it');
  }
  if (Array.isArray(data.rules)) {
    data.rules.forEach((r, i) => {
      if (isPlainObject(r) && isPlainObject(r.approvers)) check(r.approvers.groups, ['rules', i, 'approvers', 'groups'], 'nobody can approve what this rule holds as it');
    });
  }
  if (Array.isArray(data.limits)) {
    data.limits.forEach((l, i) => {
      if (isPlainObject(l) && isPlainObject(l.approvers)) check(l.approvers.groups, ['limits', i, 'approvers', 'groups'], 'nobody can approve what this limit holds as it');
    });
  }
  return out;
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
  return sortInDocumentOrder(problems, data)[0];
}

function sortInDocumentOrder(problems: Problem[], data: unknown): Problem[] {
  const keyed = problems.map((p, i) => ({ p, i, k: documentOrderKey(data, p.path) }));
  keyed.sort((a, b) => {
    const n = Math.min(a.k.length, b.k.length);
    for (let j = 0; j < n; j++) if (a.k[j] !== b.k[j]) return a.k[j] - b.k[j];
    // Same prefix: the deeper (more specific) problem first; ties keep their order
    // (environment problems come before schema problems they cause).
    return b.k.length - a.k.length || a.i - b.i;
  });
  return keyed.map((x) => x.p);
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
  if (raw.listen.drain_timeout !== undefined) listen.drainTimeoutMs = raw.listen.drain_timeout;
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

  // A limit that asks for approval without naming approvers asks those who approve the rules'
  // statements (any one of their groups); with no such rule it must name them.
  const ruleApprovers = [...new Set(raw.rules.flatMap((r) => r.approvers?.groups ?? []))];
  const limits: LimitConfig[] = raw.limits.map((l, i) => {
    const asks = l.on_exceed === 'approve' || l.first_touch !== undefined;
    if (asks && !l.approvers && ruleApprovers.length === 0) {
      throw new ConfigError(
        ctx.file,
        `limits[${i}].approvers`,
        'required when on_exceed or first_touch is approve and no rule names approvers to ask instead (e.g. approvers: { groups: [dba], count: 1 })',
      );
    }
    const approvers = l.approvers ?? (asks ? { groups: ruleApprovers, count: 1 } : undefined);
    return stripUndefined({
      name: l.name,
      match: l.match,
      maxRows: l.max_rows,
      maxBytes: l.max_bytes,
      rowsPerHour: l.rows_per_hour,
      statementsPerMinute: l.statements_per_minute,
      maxEstimatedRows: l.max_estimated_rows,
      firstTouch: l.first_touch,
      onExceed: l.on_exceed,
      approvers,
    });
  });

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
    limits,
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
      console: raw.admin.console
        ? stripUndefined({ enabled: raw.admin.console.enabled, groups: raw.admin.console.groups, idleTimeoutMs: raw.admin.console.idle_timeout, maxAgeMs: raw.admin.console.max_age, origin: raw.admin.console.origin })
        : undefined,
    });
  }
  if (raw.state) config.state = { store: normalizeStore(ctx, raw.state.store) };
  if (raw.oidc) config.oidc = resolveOidcPaths(raw.oidc, ctx.baseDir);
  if (raw.report) config.report = { privilegedGroups: raw.report.privileged_groups };
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
