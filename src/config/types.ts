/**
 * The validated, normalized configuration Warden runs on.
 *
 * `loadConfig()` (config/load.ts) turns a `warden.yaml` (version 1, see
 * ../shared/spec/warden.example.yaml and docs/configuration.md) into this shape:
 * env vars substituted, defaults applied, relative paths resolved against the
 * config file's directory, URLs parsed. Every other module consumes only this.
 */

import type { OidcSettings } from './oidc.js';

export type TlsMode = 'disable' | 'require' | 'verify-full';
export type IdentityKind = 'human' | 'service' | 'agent';
export type RuleAction = 'allow' | 'deny' | 'mask' | 'approve';
export type MaskerName = 'fake' | 'partial' | 'hash' | 'redact' | 'null';

export interface ListenTlsConfig {
  /** Absolute paths (resolved against the config file's directory). */
  cert: string;
  key: string;
  /** Refuse clients that do not negotiate TLS (28000). */
  require: boolean;
}

export interface ListenConfig {
  host: string;
  port: number;
  tls?: ListenTlsConfig;
  /** Largest client message accepted, in bytes (default 1 GiB like PostgreSQL). */
  maxMessageSize: number;
  /** Client connections at once; absent: derived from the open-file limit when Warden starts. */
  maxConnections?: number;
  /**
   * On SIGTERM/SIGINT, how long (ms) running statements and open transactions may finish
   * before their sessions are ended with 57P01; absent: 30 s.
   */
  drainTimeoutMs?: number;
}

export interface AdminConfig {
  host: string;
  port: number;
  /** Groups whose members may read the audit log through the admin API. */
  auditors: string[];
  /**
   * Groups whose members may operate Warden through the admin API: list and kill sessions,
   * suspend and resume identities, reload the configuration.
   */
  operators: string[];
  /** Serve HTTPS with this certificate and key (absolute paths). */
  tls?: { cert: string; key: string };
  /** The web console (docs/console.md); absent: on, with the defaults. */
  console?: AdminConsoleConfig;
}

export interface AdminConsoleConfig {
  enabled: boolean;
  /** Groups whose members may log in; absent: admin.operators, admin.auditors and the approver groups of rules and limits. */
  groups?: string[];
  /** Milliseconds without a request after which a console session ends. */
  idleTimeoutMs: number;
  /** Milliseconds after its login at which a console session ends. */
  maxAgeMs: number;
  /** The origin browsers see (a TLS-terminating proxy in front); absent: this listener's own. */
  origin?: string;
}

export interface UpstreamConfig {
  host: string;
  port: number;
  user: string;
  /** May be undefined for trust auth. Never log it. */
  password?: string;
  database: string;
  /** The upstream URL with the password replaced by `***`: safe to log or show. */
  redactedUrl: string;
}

export interface DatabaseConfig {
  /** The name a client gives as `database` (the key under `databases`). */
  name: string;
  upstream: UpstreamConfig;
  /** A free label rules can match, e.g. "production". */
  environment?: string;
  tls: TlsMode;
  /** Optional CA bundle path for tls: verify-full (absolute). */
  ca?: string;
  /**
   * Functions operators vouch for (`schema.name` patterns, `*` = any characters but `.`):
   * calling them is not judged by their body, and a body Warden cannot read is not opaque.
   */
  trustedFunctions?: readonly string[];
}

export interface IdentityConfig {
  name: string;
  kind: IdentityKind;
  groups: string[];
  /** Upstream role its sessions run as (`SET ROLE` done by Warden at startup; clients cannot change it). */
  role?: string;
  /** Sessions this identity may have at once (53300 beyond). */
  maxConnections?: number;
  /** Plain password (usually from ${ENV}). Exactly one of password / scram is set. */
  password?: string;
  /** A SCRAM-SHA-256 verifier: `SCRAM-SHA-256$<iter>:<salt b64>$<StoredKey b64>:<ServerKey b64>`. */
  scram?: string;
}

/** A `match` block of a rule. Kept structurally; the policy engine compiles it. */
export interface RuleMatch {
  /** Statement classes (spec README), lower-cased. */
  statement?: string[];
  identity?: string[];
  kind?: IdentityKind[];
  groups?: string[];
  database?: string[];
  environment?: string[];
  tables?: string[];
  columns?: string[];
  sensitive?: string[];
  /** true/false: whether any intent (ticket or reason) was given; or required key values. */
  intent?: boolean | Record<string, string | boolean>;
  /** CIDR ranges or addresses. */
  client?: string[];
  /**
   * As loaded: `days` expanded and ordered (`mon`..`sun`, ranges like mon-fri already expanded),
   * `hours` zero-padded `HH:MM-HH:MM` (start inclusive, end exclusive; end < start wraps past
   * midnight), `tz` a canonical IANA name, always set (default `UTC`).
   */
  time?: { days?: string[]; hours?: string; tz?: string };
  not?: RuleMatch;
  any?: RuleMatch[];
}

export interface RuleConfig {
  name: string;
  match: RuleMatch;
  action: RuleAction;
  reason?: string;
  approvers?: { groups: string[]; count: number };
  /** mask rules: `false` relaxes the refusal of uses masking cannot follow (filters, ordering, ...). */
  strict?: boolean;
}

/** A `limits:` entry: how much, how fast (docs/limits.md). Matches with the rules' match language. */
export interface LimitConfig {
  name: string;
  match: RuleMatch;
  /** Rows one statement may return. */
  maxRows?: number;
  /** Result bytes one statement may return. */
  maxBytes?: number;
  /** Rows returned to the identity per clock hour (all its sessions). */
  rowsPerHour?: number;
  /** Statements the identity may start per clock minute (all its sessions). */
  statementsPerMinute?: number;
  /** Rows the planner expects a read to return, checked with a plain EXPLAIN before it runs. */
  maxEstimatedRows?: number;
  /**
   * halt: the statement fails (54000/53400); suspend: that, and the identity is suspended until
   * resumed; approve (max_estimated_rows only): the statement is held for `approvers`.
   */
  onExceed: 'halt' | 'suspend' | 'approve';
  /** approve: an identity's first read of a table (or sensitive type) is held for `approvers`, then remembered. */
  firstTouch?: 'approve';
  approvers?: { groups: string[]; count: number };
}

export interface SensitiveConfig {
  /** `schema.table.column` pattern (with `*` per part) → sensitive type name. */
  columns: Record<string, string>;
  detect: string[];
  /** type name → masker. */
  maskers: Record<string, MaskerName>;
  /** Secret keying the deterministic fakes and hashes. Never log it. Absent: random per start. */
  key?: string;
}

export interface ApprovalsConfig {
  mode: 'hold' | 'reject';
  /** milliseconds */
  timeoutMs: number;
  /** Characters of statement text (and of each parameter) shown before a marker (docs/approvals.md); default 1 MiB. */
  textCap?: number;
  webhook?: string;
}

export interface StoreConfig {
  /** `sqlite:PATH` (path resolved absolute), `postgres://...`, or for audit also `jsonl:PATH`. */
  kind: 'sqlite' | 'postgres' | 'jsonl';
  /** Absolute file path for sqlite/jsonl; the URL for postgres. */
  location: string;
}

export type AuditStreamConfig = { kind: 'stdout' } | { kind: 'webhook'; url: string } | { kind: 'otlp'; url: string };

/**
 * A second place every signed checkpoint is also written to (audit/witness.ts):
 * a file (absolute path) or a PostgreSQL table, which `warden audit verify` reads,
 * or stdout / a webhook, which it cannot.
 */
export type AuditWitnessConfig = { kind: 'file'; path: string } | { kind: 'stdout' } | { kind: 'webhook'; url: string } | { kind: 'postgres'; url: string };

export interface AuditConfig {
  store: StoreConfig;
  onFailure: 'block' | 'continue';
  /**
   * `fsync` (default): a record is on stable storage before its statement runs (survives a
   * power loss). `os`: handed to the operating system (survives a crash of Warden, not of the
   * machine); much cheaper per statement.
   */
  durability: 'fsync' | 'os';
  /** Name of this Warden's hash chain (default: `<hostname>:<listen port>`). */
  instance?: string;
  /** Absolute path of the PEM Ed25519 private key that signs checkpoints. */
  signingKey?: string;
  /** Records between signed checkpoints. */
  checkpointEvery: number;
  /** Longest time between checkpoints while records arrive (ms). */
  checkpointIntervalMs: number;
  /** Records older than this are pruned (ms); absent: kept forever. */
  retentionMs?: number;
  stream: AuditStreamConfig[];
  /** Checkpoint witnesses (needs signingKey); absent when none is configured. */
  witness?: AuditWitnessConfig[];
}

export interface WardenConfig {
  version: 1;
  /** Absolute path of the file this was loaded from ('<demo>' for generated ones). */
  source: string;
  /** sha256 hex of the file's raw bytes (before env substitution). */
  hash: string;
  listen: ListenConfig;
  admin?: AdminConfig;
  databases: Record<string, DatabaseConfig>;
  identities: IdentityConfig[];
  sensitive?: SensitiveConfig;
  rules: RuleConfig[];
  default: 'allow' | 'deny';
  /** `limits:` (empty when none). */
  limits: LimitConfig[];
  approvals?: ApprovalsConfig;
  state?: { store: StoreConfig };
  audit?: AuditConfig;
  /** OIDC logins: a JWT from this identity provider as the password (over TLS). */
  oidc?: OidcSettings;
  /** `warden report` (docs/reports.md); absent: no privileged groups named. */
  report?: ReportConfig;
}

export interface ReportConfig {
  /** Groups whose members' use the report lists as privileged. */
  privilegedGroups: string[];
}
