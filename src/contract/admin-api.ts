/**
 * The shapes of the admin API's answers that more than one side reads: the routes
 * (src/admin/*-routes.ts) build them, the CLI and the web console (src/console/ui, compiled
 * for the browser) read them. Types only, importing nothing but the import-free store/types.ts,
 * so the browser bundle can use them.
 */
import type { ApprovalRequest } from '../store/types.js';

/**
 * An approval request as the API, the webhook and the CLI show it: the statement text and
 * each parameter in full up to the cap, else cut with a visible marker (full length, SHA-256
 * of the full text, the command that prints it); `sqlLength` and `sqlSha256` always describe
 * the full text the store keeps.
 */
export type ApprovalView = ApprovalRequest & {
  readonly sqlLength: number;
  readonly sqlSha256: string;
  readonly sqlTruncated: boolean;
  /** Indexes of parameters cut at the cap (absent when none was). */
  readonly paramsTruncated?: readonly number[];
};

/** One session as `GET /api/v1/sessions` shows it. */
export interface SessionView {
  id: string;
  identity: string;
  kind: string;
  on_behalf_of: string | null;
  auth: string;
  database: string;
  client_address: string;
  client_port: number;
  tls: boolean;
  tls_version: string | null;
  application_name: string | null;
  started_at: string;
  state: string;
  /** The approval request a held statement waits for. */
  approval_request: string | null;
  /** The latest statement (the one running, when active), as the audit shows it: secrets redacted, capped. */
  statement: string | null;
  statement_started_at: string | null;
  /** How long the statement has been running (active or waiting states only). */
  statement_duration_ms: number | null;
}

/** What happened to statements, as the live statistics count them. */
export type DecisionName = 'allowed' | 'masked' | 'refused' | 'held' | 'halted';

/** `GET /api/v1/stats`. */
export interface StatsSnapshot {
  at: string;
  totals: Record<DecisionName, number>;
  sessions: number;
  connections: Readonly<Record<string, number>> | null;
  approvals_pending: number | null;
  audit: {
    store: string;
    instance: string;
    healthy: boolean;
    backlog: number;
    written: number;
    failures: number;
    lost: number;
    head: { seq: number; hash: string };
    last_checkpoint: { seq: number; ts: string } | null;
  } | null;
  /** Last five minutes (auditors and operators only; null for others). */
  top: { window_s: number; identities: { name: string; statements: number }[]; tables: { name: string; statements: number }[]; scanned: number } | null;
}

/** An event of `GET /api/v1/stats/stream`: the snapshot and the rates since the one before. */
export interface StatsEvent extends StatsSnapshot {
  per_second: Record<DecisionName, number>;
}

/** One statement of a session replay. */
export interface ReplayStatement {
  seq: number;
  ts: string;
  sql: string | null;
  params: unknown;
  decision: string | null;
  rule: string | null;
  reason: string | null;
  refused: boolean;
  sqlstate: string | null;
  error: string | null;
  duration_ms: number | null;
  rows: number | null;
  affected: number | null;
  tags: unknown;
  ended_at: string | null;
}

/** `GET /api/v1/audit/sessions/:id/replay`. */
export interface SessionReplay {
  session: string;
  identity: string | null;
  database: string | null;
  instance: string;
  started_at: string | null;
  ended_at: string | null;
  end_reason: string | null;
  statements: ReplayStatement[];
  events: { seq: number; ts: string; type: string; data: Record<string, unknown> }[];
  truncated: boolean;
}
