/**
 * The zod (v4) schema of a raw `warden.yaml`, version 1 (see docs/configuration.md).
 *
 * It validates the document *after* `${NAME}` substitution (config/load.ts does that on the
 * parsed YAML) and applies the format conversions that need nothing but the value itself:
 * durations to milliseconds, sizes to bytes, "string or list" to a list, day names expanded,
 * statement classes lower-cased. Everything that needs the file system or the config file's
 * directory (path resolution, cert files existing) is done by load.ts.
 *
 * Every object is strict: an unknown key is an error whose message lists the keys allowed
 * there. Messages never contain a value that could be a secret (passwords, SCRAM verifiers,
 * URLs, webhook addresses).
 */
import { BlockList, isIP } from 'node:net';
import { z } from 'zod';
import { OidcSchema } from './oidc.js';
import type { IdentityKind, MaskerName, RuleMatch, UpstreamConfig } from './types.js';

// ---------------------------------------------------------------------------------------------
// Vocabularies
// ---------------------------------------------------------------------------------------------

/**
 * Statement classes `match.statement` accepts: the spec's kinds and groups, plus Warden's extra
 * classes (src/sql/types.ts STATEMENT_EXTRA_CLASSES; a unit test keeps the two lists equal).
 */
export const STATEMENT_CLASSES = [
  'select', 'insert', 'update', 'delete', 'merge', 'copy', 'create', 'alter', 'drop',
  'truncate', 'grant', 'revoke', 'set', 'call', 'do', 'explain', 'transaction', 'other',
  'read', 'write', 'ddl', 'opaque',
  'comment', 'lock', 'maintenance', 'code',
] as const;
export type StatementClass = (typeof STATEMENT_CLASSES)[number];

export const IDENTITY_KINDS = ['human', 'service', 'agent'] as const satisfies readonly IdentityKind[];
export const MASKERS = ['fake', 'partial', 'hash', 'redact', 'null'] as const satisfies readonly MaskerName[];
export const TLS_MODES = ['disable', 'require', 'verify-full'] as const;
export const RULE_ACTIONS = ['allow', 'deny', 'mask', 'approve'] as const;

/** Weekdays in the normalized form `match.time.days` is given to the policy engine. */
export const WEEKDAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'] as const;
const WEEKDAY_NAMES: Record<string, number> = {
  mon: 0, monday: 0, tue: 1, tues: 1, tuesday: 1, wed: 2, wednesday: 2, thu: 3, thur: 3,
  thurs: 3, thursday: 3, fri: 4, friday: 4, sat: 5, saturday: 5, sun: 6, sunday: 6,
};

export const DEFAULT_LISTEN_HOST = '127.0.0.1';
export const DEFAULT_LISTEN_PORT = 6432;
export const DEFAULT_ADMIN_HOST = '127.0.0.1';
export const DEFAULT_ADMIN_PORT = 7070;
export const DEFAULT_MAX_MESSAGE_SIZE = 1024 * 1024 * 1024; // 1 GiB, like PostgreSQL
/** The wire protocol's length field is a signed 32-bit integer. */
export const MAX_MESSAGE_SIZE_LIMIT = 2 ** 31 - 1;
export const DEFAULT_APPROVAL_TIMEOUT_MS = 10 * 60 * 1000;
/** Node timers cannot wait longer than this (larger values fire at once). */
export const MAX_DURATION_MS = 2 ** 31 - 1;
export const DEFAULT_POSTGRES_PORT = 5432;

// ---------------------------------------------------------------------------------------------
// Pure value parsers (also used by load.ts and available to other modules)
// ---------------------------------------------------------------------------------------------

type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * A duration: a number of seconds, or a string of one or more `<number><unit>` parts with
 * unit ms, s, m, h or d (`500ms`, `30s`, `10m`, `1h30m`); a bare numeric string is seconds.
 * Returns milliseconds (> 0, at most MAX_DURATION_MS).
 */
export function parseDuration(input: unknown): Parsed<number> {
  const bad = 'expected a duration such as 500ms, 30s, 10m, 1h30m or a number of seconds';
  let ms: number;
  if (typeof input === 'number') {
    if (!Number.isFinite(input)) return { ok: false, error: bad };
    ms = input * 1000;
  } else if (typeof input === 'string') {
    const s = input.trim();
    if (/^\d+(\.\d+)?$/.test(s)) {
      ms = Number(s) * 1000;
    } else {
      if (!/^(\d+(\.\d+)?(ms|s|m|h|d))+$/.test(s)) return { ok: false, error: bad };
      ms = 0;
      for (const m of s.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h|d)/g)) ms += Number(m[1]) * DURATION_UNITS[m[2]];
    }
  } else {
    return { ok: false, error: bad };
  }
  ms = Math.round(ms);
  if (ms <= 0) return { ok: false, error: 'must be a positive duration' };
  if (ms > MAX_DURATION_MS) return { ok: false, error: 'must be at most 24d (2147483647ms)' };
  return { ok: true, value: ms };
}

const SIZE_UNITS: Record<string, number> = {
  '': 1, b: 1,
  k: 1024, kb: 1024, kib: 1024,
  m: 1024 ** 2, mb: 1024 ** 2, mib: 1024 ** 2,
  g: 1024 ** 3, gb: 1024 ** 3, gib: 1024 ** 3,
};

/**
 * A size in bytes: an integer, or a string `<integer>[unit]` with unit B, kB/KB/KiB/K, MB/MiB/M,
 * GB/GiB/G (case-insensitive, powers of 1024 as in PostgreSQL). Returns bytes.
 */
export function parseSize(input: unknown): Parsed<number> {
  const bad = 'expected a size in bytes or a string such as 64MB or 1GB';
  let bytes: number;
  if (typeof input === 'number') {
    if (!Number.isInteger(input)) return { ok: false, error: 'must be a whole number of bytes' };
    bytes = input;
  } else if (typeof input === 'string') {
    const m = /^(\d+)\s*([a-z]*)$/i.exec(input.trim());
    const unit = m ? SIZE_UNITS[m[2].toLowerCase()] : undefined;
    if (!m || unit === undefined) return { ok: false, error: bad };
    bytes = Number(m[1]) * unit;
  } else {
    return { ok: false, error: bad };
  }
  if (bytes < 1) return { ok: false, error: 'must be at least 1 byte' };
  if (bytes > MAX_MESSAGE_SIZE_LIMIT) {
    return { ok: false, error: `must be at most ${MAX_MESSAGE_SIZE_LIMIT} bytes (the protocol's limit)` };
  }
  return { ok: true, value: bytes };
}

/** An upstream URL, parsed: the `UpstreamConfig` fields plus the scheme it was written with. */
export interface ParsedPostgresUrl extends UpstreamConfig {
  scheme: 'postgres' | 'postgresql';
}

/**
 * Parses `postgres://user:password@host:port/database` (or `postgresql://`). User name and
 * password are percent-decoded; the port defaults to 5432 and the database to the user name.
 * Error texts never contain the URL or any part of it.
 */
export function parsePostgresUrl(input: string): Parsed<ParsedPostgresUrl> {
  const scheme = /^(postgres|postgresql):\/\//i.exec(input)?.[1]?.toLowerCase() as ParsedPostgresUrl['scheme'] | undefined;
  if (!scheme) return { ok: false, error: 'must be a URL starting with postgres:// or postgresql://' };
  // Check the port ourselves first: URL() only says "Invalid URL".
  const rest = input.slice(input.indexOf('://') + 3);
  const authority = rest.slice(0, rest.search(/[/?#]/) < 0 ? rest.length : rest.search(/[/?#]/));
  if (!authority.includes('@') && rest.slice(authority.length).includes('@')) {
    return { ok: false, error: 'has a user name or password containing / # or ? that must be percent-encoded (%2F %23 %3F)' };
  }
  const hostPort = authority.slice(authority.lastIndexOf('@') + 1);
  const portText = /^(?:\[[^\]]*\]|[^:[\]]*):(.*)$/.exec(hostPort)?.[1];
  if (portText !== undefined && portText !== '') {
    const p = Number(portText);
    if (!/^\d+$/.test(portText) || p < 1 || p > 65535) return { ok: false, error: 'port must be between 1 and 65535' };
  }
  let url: URL;
  try {
    url = new URL(input);
  } catch {
    return {
      ok: false,
      error: 'is not a valid URL (check the host and port, and percent-encode special characters such as / # ? in the user name and password)',
    };
  }
  if (url.search || url.hash) {
    return { ok: false, error: 'query parameters and fragments are not supported (use the tls and ca keys for TLS)' };
  }
  let host = url.hostname;
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  if (!host) return { ok: false, error: 'has no host' };
  let port = DEFAULT_POSTGRES_PORT;
  if (url.port !== '') {
    port = Number(url.port);
    if (!Number.isInteger(port) || port < 1 || port > 65535) return { ok: false, error: 'port must be between 1 and 65535' };
  }
  let user: string;
  let password: string | undefined;
  let database: string;
  try {
    user = decodeURIComponent(url.username);
    password = url.password === '' ? undefined : decodeURIComponent(url.password);
    database = decodeURIComponent(url.pathname.replace(/^\//, ''));
  } catch {
    return { ok: false, error: 'contains an invalid percent-escape (%XX) in the user name, password or database' };
  }
  if (!user) return { ok: false, error: 'has no user name (expected postgres://user:password@host:port/database)' };
  if (database.includes('/')) return { ok: false, error: 'database name must not contain "/"' };
  if (!database) database = user;
  const hostPart = host.includes(':') ? `[${host}]` : host;
  const redactedUrl =
    `${scheme}://${encodeURIComponent(user)}${password === undefined ? '' : ':***'}` +
    `@${hostPart}:${port}/${encodeURIComponent(database)}`;
  return { ok: true, value: { scheme, host, port, user, password, database, redactedUrl } };
}

/** A store location as written: kind and the text after the scheme (path or full URL). */
export interface RawStore {
  kind: 'sqlite' | 'postgres' | 'jsonl';
  /** sqlite/jsonl: the path as written (relative to the config file), or `:memory:`; postgres: the URL. */
  location: string;
}

export function parseStore(input: string, allowJsonl: boolean): Parsed<RawStore> {
  const kinds = allowJsonl ? 'sqlite:PATH, postgres://... or jsonl:PATH' : 'sqlite:PATH or postgres://...';
  if (/^postgres(ql)?:\/\//i.test(input)) {
    const u = parsePostgresUrl(input);
    if (!u.ok) return { ok: false, error: `URL ${u.error}` };
    return { ok: true, value: { kind: 'postgres', location: input } };
  }
  const m = /^(sqlite|jsonl):(.*)$/i.exec(input);
  if (!m || (!allowJsonl && m[1].toLowerCase() === 'jsonl')) return { ok: false, error: `expected ${kinds}` };
  const kind = m[1].toLowerCase() as 'sqlite' | 'jsonl';
  const location = m[2];
  if (!location.trim()) return { ok: false, error: `${kind}: needs a file path (e.g. ${kind}:./warden-${kind === 'sqlite' ? 'state.db' : 'audit.jsonl'})` };
  if (location === ':memory:' && kind !== 'sqlite') return { ok: false, error: 'only sqlite supports :memory:' };
  return { ok: true, value: { kind, location } };
}

/** A checkpoint witness as written in the config (file paths not yet resolved). */
export type RawWitness = { kind: 'file'; location: string } | { kind: 'stdout' } | { kind: 'webhook'; url: string } | { kind: 'postgres'; url: string };

const WITNESS_FORMS = 'file:PATH, stdout, postgres://..., an http(s):// webhook URL, or { webhook: URL }';

/** One `audit.witness` entry: `file:PATH`, `stdout`, `postgres://...`, `https://...` (a webhook) or `{ webhook: URL }`. */
export function parseWitness(input: unknown): Parsed<RawWitness> {
  if (isPlainRecord(input)) {
    const keys = Object.keys(input);
    if (keys.length !== 1 || keys[0] !== 'webhook') return { ok: false, error: `expected ${WITNESS_FORMS}; an object has the one key webhook` };
    input = input.webhook;
    if (typeof input !== 'string' || !/^https?:\/\//i.test(input)) return { ok: false, error: 'webhook: must be an http:// or https:// URL' };
  }
  if (typeof input !== 'string') return { ok: false, error: `expected ${WITNESS_FORMS}` };
  const v = input.trim();
  if (v === 'stdout') return { ok: true, value: { kind: 'stdout' } };
  if (/^postgres(ql)?:\/\//i.test(v)) {
    const u = parsePostgresUrl(v);
    if (!u.ok) return { ok: false, error: `URL ${u.error}` };
    return { ok: true, value: { kind: 'postgres', url: v } };
  }
  if (/^https?:\/\//i.test(v)) {
    let host = '';
    try {
      host = new URL(v).hostname;
    } catch {
      host = '';
    }
    if (host === '') return { ok: false, error: `webhook: ${JSON.stringify(v)} is not a valid http(s) URL` };
    return { ok: true, value: { kind: 'webhook', url: v } };
  }
  const m = /^file:(.*)$/i.exec(v);
  if (m) {
    if (m[1].trim() === '') return { ok: false, error: 'file: needs a path (e.g. file:/var/lib/warden-witness/checkpoints.jsonl)' };
    return { ok: true, value: { kind: 'file', location: m[1] } };
  }
  return { ok: false, error: `expected ${WITNESS_FORMS}, got ${JSON.stringify(v)}` };
}

function isPlainRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

const SCRAM_RE = /^SCRAM-SHA-256\$(\d+):([A-Za-z0-9+/]+={0,2})\$([A-Za-z0-9+/]+={0,2}):([A-Za-z0-9+/]+={0,2})$/;

/** Whether `s` is a SCRAM-SHA-256 verifier as stored by PostgreSQL in pg_authid. */
export function isScramVerifier(s: string): boolean {
  const m = SCRAM_RE.exec(s);
  if (!m) return false;
  const iterations = Number(m[1]);
  if (!Number.isSafeInteger(iterations) || iterations < 1) return false;
  const b64ok = (t: string) => t.length % 4 === 0 && Buffer.from(t, 'base64').toString('base64') === t;
  if (![m[2], m[3], m[4]].every(b64ok)) return false;
  if (Buffer.from(m[2], 'base64').length === 0) return false;
  return Buffer.from(m[3], 'base64').length === 32 && Buffer.from(m[4], 'base64').length === 32;
}

/** Validates a client address or CIDR range (`10.0.0.0/8`, `::1`, `192.168.1.7`). */
export function checkClientRange(s: string): string | undefined {
  const bad = `"${s}" is not an IP address or CIDR range (e.g. 10.0.0.0/8, 192.168.1.7, ::1/128)`;
  const slash = s.indexOf('/');
  const addr = slash < 0 ? s : s.slice(0, slash);
  const family = isIP(addr);
  if (family === 0) return bad;
  const type = family === 4 ? 'ipv4' : 'ipv6';
  const list = new BlockList();
  try {
    if (slash < 0) {
      list.addAddress(addr, type);
    } else {
      const prefixText = s.slice(slash + 1);
      const prefix = Number(prefixText);
      const max = family === 4 ? 32 : 128;
      if (!/^\d+$/.test(prefixText) || prefix > max) return `"${s}": the prefix length must be 0-${max}`;
      list.addSubnet(addr, prefix, type);
    }
  } catch {
    return bad;
  }
  return undefined;
}

/** Validates an IANA time zone name; returns its canonical spelling or undefined. */
export function canonicalTimeZone(tz: string): string | undefined {
  try {
    return new Intl.DateTimeFormat('en-US', { timeZone: tz }).resolvedOptions().timeZone;
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// Schema building blocks
// ---------------------------------------------------------------------------------------------

/** A strict object whose unknown-key error lists the keys allowed there. */
function strictObject<T extends z.ZodRawShape>(shape: T) {
  const keys = Object.keys(shape).join(', ');
  return z.strictObject(shape, {
    error: (iss) => (iss.code === 'unrecognized_keys' ? `unknown key (expected one of ${keys})` : undefined),
  });
}

const nonEmpty = z.string().min(1);

/** Strings that came from `${NAME}` may stand for numbers. */
const numericString = (v: unknown) => (typeof v === 'string' && /^\s*\d+\s*$/.test(v) ? Number(v) : v);
const booleanString = (v: unknown) =>
  typeof v === 'string' && /^\s*(true|false)\s*$/i.test(v) ? v.trim().toLowerCase() === 'true' : v;

/** A listening port; 0 asks the OS for any free port (tests, the demo). */
const port = z.preprocess(numericString, z.number().int().min(0).max(65535));
const bool = z.preprocess(booleanString, z.boolean());

/** A string or a non-empty list of strings, normalized to a list. */
function stringOrList<T extends z.ZodType<string, string>>(item: T) {
  return z.preprocess((v) => (typeof v === 'string' ? [v] : v), z.array(item).min(1));
}

function refineString(check: (v: string) => string | undefined) {
  return z.string().superRefine((v, ctx) => {
    const error = check(v);
    if (error) ctx.addIssue({ code: 'custom', message: error });
  });
}

const statementClass = z
  .string()
  .transform((v) => v.trim().toLowerCase())
  .superRefine((v, ctx) => {
    if (!(STATEMENT_CLASSES as readonly string[]).includes(v)) {
      ctx.addIssue({ code: 'custom', message: `unknown statement class "${v}" (expected one of ${STATEMENT_CLASSES.join(', ')})` });
    }
  });

const identityKind = z.enum(IDENTITY_KINDS);

function objectPattern(what: string, minParts: number, maxParts: number) {
  return refineString((v) => {
    const parts = v.split('.');
    if (parts.length < minParts || parts.length > maxParts || parts.some((p) => p.trim() === '')) {
      return `"${v}" is not a valid ${what} pattern`;
    }
    return undefined;
  });
}

const tablePattern = objectPattern('table (schema.table or table, * as a wildcard)', 1, 2);
const columnPattern = objectPattern('column (schema.table.column, table.column or column, * as a wildcard)', 1, 3);

const typeNameRe = /^[A-Za-z_][A-Za-z0-9_-]*$/;
const sensitiveType = refineString((v) =>
  typeNameRe.test(v) ? undefined : `"${v}" is not a valid sensitive type name (letters, digits, _ and -)`,
);
/** In a match: a type name, or a pattern with `*` (`"*"`: any sensitive type). */
const typePatternRe = /^(?:[A-Za-z_*][A-Za-z0-9_*-]*)$/;
const sensitiveTypePattern = refineString((v) =>
  typePatternRe.test(v) ? undefined : `"${v}" is not a valid sensitive type name or pattern (letters, digits, _, - and * as a wildcard)`,
);

function expandDays(raw: string[], ctx: z.RefinementCtx): string[] {
  const set = new Set<number>();
  raw.forEach((entry, i) => {
    const parts = entry.trim().toLowerCase().split(/\s*-\s*/);
    const idx = parts.map((p) => WEEKDAY_NAMES[p]);
    if (parts.length > 2 || idx.some((d) => d === undefined)) {
      ctx.addIssue({
        code: 'custom',
        path: [i],
        message: `"${entry}" is not a weekday or range of weekdays (mon, tue, wed, thu, fri, sat, sun; e.g. mon-fri)`,
      });
      return;
    }
    const [from, to = from] = idx as number[];
    for (let d = from; ; d = (d + 1) % 7) {
      set.add(d);
      if (d === to) break;
    }
  });
  return [...set].sort((a, b) => a - b).map((d) => WEEKDAYS[d]);
}

const HOURS_RE = /^(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})$/;

function normalizeHours(v: string): string | undefined {
  const m = HOURS_RE.exec(v.trim());
  if (!m) return undefined;
  const [h1, m1, h2, m2] = [m[1], m[2], m[3], m[4]].map(Number);
  const start = h1 * 60 + m1;
  const end = h2 * 60 + m2;
  if (m1 > 59 || m2 > 59 || start >= 24 * 60 || end > 24 * 60 || start === end) return undefined;
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${pad(h1)}:${pad(m1)}-${pad(h2)}:${pad(m2)}`;
}

const timeMatch = strictObject({
  days: z
    .preprocess((v) => (typeof v === 'string' ? [v] : v), z.array(z.string()).min(1))
    .transform((v, ctx) => expandDays(v, ctx))
    .optional(),
  hours: z
    .string()
    .transform((v, ctx) => {
      const h = normalizeHours(v);
      if (h === undefined) {
        ctx.addIssue({ code: 'custom', message: `"${v}" is not a time range HH:MM-HH:MM (e.g. 09:00-18:00; 00:00-24:00 is the whole day)` });
        return z.NEVER;
      }
      return h;
    })
    .optional(),
  tz: z
    .string()
    .transform((v, ctx) => {
      const tz = canonicalTimeZone(v);
      if (tz === undefined) {
        ctx.addIssue({ code: 'custom', message: `"${v}" is not a known time zone (use an IANA name such as Europe/Paris or UTC)` });
        return z.NEVER;
      }
      return tz;
    })
    .optional(),
}).transform((t) => ({ ...t, tz: t.tz ?? 'UTC' }));

const intentMatch = z.union([
  z.preprocess(booleanString, z.boolean()),
  z
    .record(nonEmpty, z.union([z.string(), z.boolean()], { error: 'expected a string or true/false' }))
    .refine((r) => Object.keys(r).length > 0, { message: 'must not be empty (use true to require any intent)' }),
], { error: 'expected true, false or a mapping of intent keys (e.g. { ticket: true })' });

/** The `match` block of a rule; recursive through `not` and `any`. */
export const MatchSchema: z.ZodType<RuleMatch, unknown> = z.lazy(() =>
  strictObject({
    statement: stringOrList(statementClass).optional(),
    identity: stringOrList(nonEmpty).optional(),
    kind: stringOrList(identityKind).optional(),
    groups: stringOrList(nonEmpty).optional(),
    database: stringOrList(nonEmpty).optional(),
    environment: stringOrList(nonEmpty).optional(),
    tables: stringOrList(tablePattern).optional(),
    columns: stringOrList(columnPattern).optional(),
    sensitive: stringOrList(sensitiveTypePattern).optional(),
    intent: intentMatch.optional(),
    client: stringOrList(refineString(checkClientRange)).optional(),
    time: timeMatch.optional(),
    not: MatchSchema.optional(),
    any: z.array(MatchSchema).min(1).optional(),
  }),
);

// ---------------------------------------------------------------------------------------------
// Sections
// ---------------------------------------------------------------------------------------------

const ListenTlsSchema = strictObject({
  cert: nonEmpty,
  key: nonEmpty,
  require: bool.default(false),
});

const ListenSchema = strictObject({
  host: nonEmpty.default(DEFAULT_LISTEN_HOST),
  port: port.default(DEFAULT_LISTEN_PORT),
  tls: ListenTlsSchema.optional(),
  max_message_size: z
    .unknown()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined) return DEFAULT_MAX_MESSAGE_SIZE;
      const r = parseSize(v);
      if (!r.ok) {
        ctx.addIssue({ code: 'custom', message: r.error });
        return z.NEVER;
      }
      return r.value;
    }),
  /** Client connections at once (handshakes and sessions); default: from the open-file limit. */
  max_connections: z.number().int().min(1).max(10_000_000).optional(),
  /** On SIGTERM/SIGINT: how long running statements (and open transactions) may finish before their sessions are ended; default 30s. */
  drain_timeout: durationSchema().optional(),
});

const AdminSchema = strictObject({
  host: nonEmpty.default(DEFAULT_ADMIN_HOST),
  port: port.default(DEFAULT_ADMIN_PORT),
  /** Groups whose members may read the audit log through the API. */
  auditors: z.array(nonEmpty).default([]),
  /** Groups whose members may operate: list and kill sessions, suspend and resume identities, reload. */
  operators: z.array(nonEmpty).default([]),
  tls: strictObject({ cert: nonEmpty, key: nonEmpty }).optional(),
  /** The web console on this listener (docs/console.md). */
  console: strictObject({
    enabled: z.boolean().default(true),
    /** Groups whose members may log in; default: admin.operators, admin.auditors and the approver groups of rules and limits. */
    groups: z.array(nonEmpty).optional(),
    /** A console session ends after this long without a request (default 30m) ... */
    idle_timeout: durationSchema().default(30 * 60_000),
    /** ... and this long after its login whatever happens (default 8h). */
    max_age: durationSchema().default(8 * 3_600_000),
    /** The origin browsers see, when a TLS-terminating proxy serves the console (https://warden.example.com). */
    origin: z
      .string()
      .regex(/^https?:\/\/[^/\s?#]+$/, 'an origin: scheme and host (and port), no path, e.g. https://warden.example.com')
      .optional(),
  }).optional(),
});

const upstreamUrl = z.string().superRefine((v, ctx) => {
  const r = parsePostgresUrl(v);
  if (!r.ok) ctx.addIssue({ code: 'custom', message: `upstream URL ${r.error}` });
});

const DatabaseSchema = strictObject({
  upstream: upstreamUrl,
  environment: nonEmpty.optional(),
  tls: z.enum(TLS_MODES).default('disable'),
  ca: nonEmpty.optional(),
  /** Functions the operator vouches for: `schema.name`, `*` matches any characters but `.` (`util.*`). */
  trusted_functions: z
    .array(z.string().regex(/^[^.\s]+\.[^.\s]+$/, 'a function pattern schema.name, e.g. util.* or pay.refund'))
    .optional(),
}).superRefine((db, ctx) => {
  if (db.ca !== undefined && db.tls === 'disable') {
    ctx.addIssue({ code: 'custom', path: ['ca'], message: 'has no effect with tls: disable (set tls: require or verify-full)' });
  }
});

const IdentitySchema = strictObject({
  name: nonEmpty,
  kind: identityKind.default('human'),
  groups: z.array(nonEmpty).default([]),
  /** Upstream role the identity's sessions run as (the service role must be a member). */
  role: z.string().regex(/^[A-Za-z_][A-Za-z0-9_$]{0,62}$/, 'a PostgreSQL role name (letters, digits, _ and $; at most 63)').optional(),
  /** Sessions this identity may have at once. */
  max_connections: z.number().int().min(1).optional(),
  password: nonEmpty.optional(),
  scram: z
    .string()
    .superRefine((v, ctx) => {
      if (!isScramVerifier(v)) {
        ctx.addIssue({
          code: 'custom',
          message:
            'not a valid SCRAM-SHA-256 verifier (expected SCRAM-SHA-256$<iterations>:<base64 salt>$<base64 StoredKey>:<base64 ServerKey>)',
        });
      }
    })
    .optional(),
}).superRefine((id, ctx) => {
  if (id.password === undefined && id.scram === undefined) {
    ctx.addIssue({ code: 'custom', message: 'needs a password or a scram verifier' });
  } else if (id.password !== undefined && id.scram !== undefined) {
    ctx.addIssue({ code: 'custom', path: ['scram'], message: 'password and scram are mutually exclusive (give one)' });
  }
});

const SensitiveSchema = strictObject({
  columns: z
    .record(z.string(), sensitiveType)
    .superRefine((cols, ctx) => {
      for (const pattern of Object.keys(cols)) {
        const parts = pattern.split('.');
        if (parts.length !== 3 || parts.some((p) => p.trim() === '')) {
          ctx.addIssue({
            code: 'custom',
            path: [pattern],
            message: 'the key must be a schema.table.column pattern (three dot-separated parts, * as a wildcard)',
          });
        }
      }
    })
    .default({}),
  detect: z.array(sensitiveType).default([]),
  maskers: z
    .record(z.string(), z.enum(MASKERS))
    .superRefine((m, ctx) => {
      for (const type of Object.keys(m)) {
        if (!typeNameRe.test(type)) {
          ctx.addIssue({ code: 'custom', path: [type], message: 'the key must be a sensitive type name (letters, digits, _ and -)' });
        }
      }
    })
    .default({}),
  /** Secret for the deterministic fakes (HMAC key); at least 16 characters. Usually ${ENV}. */
  key: z.string().min(16, 'must be at least 16 characters (use a long random secret, e.g. from an env var)').optional(),
});

const ApproversSchema = strictObject({
  groups: z.array(nonEmpty).min(1),
  count: z.preprocess(numericString, z.number().int().min(1)).default(1),
});

const RuleSchema = strictObject({
  name: nonEmpty,
  match: MatchSchema,
  action: z.enum(RULE_ACTIONS),
  reason: nonEmpty.optional(),
  approvers: ApproversSchema.optional(),
  /** mask rules: false lets statements filter, order or group on masked columns (see docs/masking.md). */
  strict: z.boolean().optional(),
}).superRefine((rule, ctx) => {
  if (rule.strict !== undefined && rule.action !== 'mask') {
    ctx.addIssue({ code: 'custom', path: ['strict'], message: `only allowed when action is mask (this rule's action is ${rule.action})` });
  }
  if (rule.action === 'approve' && rule.approvers === undefined) {
    ctx.addIssue({ code: 'custom', path: ['approvers'], message: 'required when action is approve (e.g. approvers: { groups: [dba], count: 1 })' });
  } else if (rule.action !== 'approve' && rule.approvers !== undefined) {
    ctx.addIssue({ code: 'custom', path: ['approvers'], message: `only allowed when action is approve (this rule's action is ${rule.action})` });
  }
});

/** A size (bytes, or "20MB"), or undefined. */
const sizeSchema = () =>
  z
    .unknown()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined) return undefined;
      const r = parseSize(v);
      if (!r.ok) {
        ctx.addIssue({ code: 'custom', message: r.error });
        return z.NEVER;
      }
      return r.value;
    });

const positiveCount = z.preprocess(numericString, z.number().int().min(1).max(Number.MAX_SAFE_INTEGER));

/** Limits this build enforces; the others are refused by name (fail closed: never silently ignored). */
const LIMIT_MEASURES = ['max_rows', 'max_bytes', 'rows_per_hour', 'statements_per_minute'] as const;

const LimitSchema = strictObject({
  name: nonEmpty,
  match: MatchSchema,
  /** Rows one statement may return to the client; beyond it the statement is halted (54000). */
  max_rows: positiveCount.optional(),
  /** Result bytes (DataRow messages) one statement may return; beyond it the statement is halted (54000). */
  max_bytes: sizeSchema(),
  /** Rows returned to the identity per clock hour, all its sessions; beyond it statements are halted (54000). */
  rows_per_hour: positiveCount.optional(),
  /** Statements the identity may start per clock minute, all its sessions; beyond it they are refused (53400). */
  statements_per_minute: positiveCount.optional(),
  /** Rows the planner expects a read to return (a plain EXPLAIN before it runs); beyond it: on_exceed. */
  max_estimated_rows: positiveCount.optional(),
  /** The first read of a table (or sensitive type) by an identity that never read it goes to approval; remembered once approved. */
  first_touch: z.literal('approve').optional(),
  on_exceed: z.enum(['halt', 'suspend', 'approve']).default('halt'),
  /** Who approves (on_exceed or first_touch approve); default: every group the rules name as approvers, one of them. */
  approvers: ApproversSchema.optional(),
}).superRefine((l, ctx) => {
  if (!LIMIT_MEASURES.some((k) => l[k] !== undefined) && l.max_estimated_rows === undefined && l.first_touch === undefined) {
    ctx.addIssue({ code: 'custom', message: `a limit needs at least one of ${[...LIMIT_MEASURES, 'max_estimated_rows'].join(', ')}` });
  }
  if (l.on_exceed === 'approve') {
    const running = LIMIT_MEASURES.filter((k) => l[k] !== undefined);
    if (running.length > 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['on_exceed'],
        message: `approve applies to max_estimated_rows (checked before a statement runs), not to ${running.join(', ')} (crossed while it runs or by the rate): put those in a limit of their own`,
      });
    }
  } else if (l.approvers !== undefined && l.first_touch === undefined) {
    ctx.addIssue({ code: 'custom', path: ['approvers'], message: `only allowed when on_exceed or first_touch is approve (this limit's on_exceed is ${l.on_exceed})` });
  }
});

const ApprovalsSchema = strictObject({
  mode: z.enum(['hold', 'reject']).default('hold'),
  /** Characters of statement text (and of each parameter) the API, webhook and audit carry before a visible marker. */
  text_cap: z.number().int().min(1024).max(1_073_741_824).optional(),
  timeout: z.unknown().optional().transform((v, ctx) => {
    if (v === undefined) return DEFAULT_APPROVAL_TIMEOUT_MS;
    const r = parseDuration(v);
    if (!r.ok) {
      ctx.addIssue({ code: 'custom', message: r.error });
      return z.NEVER;
    }
    return r.value;
  }),
  webhook: z
    .string()
    .superRefine((v, ctx) => {
      let ok = false;
      try {
        const u = new URL(v);
        ok = (u.protocol === 'http:' || u.protocol === 'https:') && u.hostname !== '';
      } catch {
        ok = false;
      }
      if (!ok) ctx.addIssue({ code: 'custom', message: 'must be an http:// or https:// URL' });
    })
    .optional(),
});

function storeSchema(allowJsonl: boolean) {
  return z.string().transform((v, ctx) => {
    const r = parseStore(v, allowJsonl);
    if (!r.ok) {
      ctx.addIssue({ code: 'custom', message: r.error });
      return z.NEVER;
    }
    return r.value;
  });
}

const StateSchema = strictObject({
  store: storeSchema(false),
});

function durationSchema() {
  return z.unknown().transform((v, ctx) => {
    const r = parseDuration(v);
    if (!r.ok) {
      ctx.addIssue({ code: 'custom', message: r.error });
      return z.NEVER;
    }
    return r.value;
  });
}

const httpUrl = (schemes: string[], example: string) =>
  z.string().superRefine((v, ctx) => {
    let ok = false;
    try {
      const u = new URL(v);
      ok = schemes.includes(u.protocol) && u.hostname !== '';
    } catch {
      ok = false;
    }
    if (!ok) ctx.addIssue({ code: 'custom', message: `must be ${example}` });
  });

const AuditStreamSchema = z.union([
  z.literal('stdout'),
  strictObject({ webhook: httpUrl(['http:', 'https:'], 'an http:// or https:// URL') }),
  strictObject({ otlp: httpUrl(['http:', 'https:'], 'an OTLP/HTTP logs URL such as http://127.0.0.1:4318/v1/logs') }),
]);

const AuditSchema = strictObject({
  store: storeSchema(true),
  on_failure: z.enum(['block', 'continue']).default('block'),
  durability: z.enum(['fsync', 'os']).default('fsync'),
  /** This Warden's chain name; several instances sharing a store need distinct names. */
  instance: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$/, 'letters, digits and . _ : - (at most 100, starting with a letter or digit)')
    .optional(),
  /** PEM file with the Ed25519 private key that signs checkpoints. */
  signing_key: z.string().min(1).optional(),
  /** Sign a checkpoint after this many records (and at least every checkpoint_interval). */
  checkpoint_every: z.number().int().min(1).max(10_000_000).default(1000),
  checkpoint_interval: durationSchema().optional(),
  /** Delete records older than this (e.g. 400d); absent: keep everything. */
  retention: z
    .unknown()
    .transform((v, ctx) => {
      const days = typeof v === 'string' ? /^\s*(\d{1,6})\s*d\s*$/.exec(v) : null;
      if (days) return Number(days[1]) * 86_400_000;
      const r = parseDuration(v);
      if (!r.ok) {
        ctx.addIssue({ code: 'custom', message: `${r.error}, or a number of days such as 400d` });
        return z.NEVER;
      }
      return r.value;
    })
    .optional(),
  /** Also send every durable record to these sinks (best effort, after the store). */
  stream: z.array(AuditStreamSchema).default([]),
  /** Also write every signed checkpoint here (one entry or a list); verify reads the file and postgres ones. */
  witness: z
    .unknown()
    .transform((v, ctx) => {
      const list = Array.isArray(v) ? v : [v];
      if (list.length === 0) return undefined;
      const out: RawWitness[] = [];
      list.forEach((entry, i) => {
        const r = parseWitness(entry);
        if (r.ok) out.push(r.value);
        else ctx.addIssue({ code: 'custom', path: Array.isArray(v) ? [i] : [], message: r.error });
      });
      return out;
    })
    .optional(),
}).superRefine((a, ctx) => {
  if (a.witness && a.witness.length > 0 && a.signing_key === undefined) {
    ctx.addIssue({
      code: 'custom',
      path: ['witness'],
      message: 'audit.witness needs audit.signing_key: a witness keeps signed checkpoints (create a key with warden audit keygen --out FILE)',
    });
  }
});

/** `warden report` (docs/reports.md). */
const ReportSchema = strictObject({
  /** Groups whose members' use the report lists as privileged (e.g. dba, admins). */
  privileged_groups: z.array(nonEmpty).default([]),
});

function uniqueNames(what: string, list: string) {
  return (items: { name: string }[], ctx: z.RefinementCtx) => {
    const seen = new Map<string, number>();
    items.forEach((item, i) => {
      const first = seen.get(item.name);
      if (first !== undefined) {
        ctx.addIssue({ code: 'custom', path: [i, 'name'], message: `duplicate ${what} name "${item.name}" (already used by ${list}[${first}])` });
      } else {
        seen.set(item.name, i);
      }
    });
  };
}

/** The whole file, version 1. */
export const ConfigSchema = strictObject({
  version: z.literal(1),
  listen: ListenSchema.default(() => ListenSchema.parse({})),
  admin: AdminSchema.optional(),
  databases: z
    .record(z.string(), DatabaseSchema)
    .superRefine((dbs, ctx) => {
      const names = Object.keys(dbs);
      if (names.length === 0) ctx.addIssue({ code: 'custom', message: 'at least one database is required' });
      for (const name of names) {
        if (name.trim() === '') ctx.addIssue({ code: 'custom', path: [name], message: 'a database name must not be empty' });
      }
    }),
  identities: z.array(IdentitySchema).superRefine(uniqueNames('identity', 'identities')).default([]),
  sensitive: SensitiveSchema.default(() => SensitiveSchema.parse({})),
  rules: z.array(RuleSchema).superRefine(uniqueNames('rule', 'rules')).default([]),
  default: z.enum(['allow', 'deny']).default('allow'),
  limits: z.array(LimitSchema).superRefine(uniqueNames('limit', 'limits')).default([]),
  approvals: ApprovalsSchema.default(() => ApprovalsSchema.parse({})),
  state: StateSchema.optional(),
  audit: AuditSchema.optional(),
  oidc: OidcSchema.optional(),
  report: ReportSchema.optional(),
});

/** What ConfigSchema produces: defaults applied, formats converted, paths not yet resolved. */
export type RawConfig = z.output<typeof ConfigSchema>;
