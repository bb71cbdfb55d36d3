/** The admin API's answers, as far as the console reads them. */
export interface Me {
  identity: string;
  kind: string;
  groups: string[];
  csrf: string;
  expires_at: string;
  idle_timeout_ms: number;
  can: { operate: boolean; audit: boolean; approve: boolean };
}

export type Decision = 'allowed' | 'masked' | 'refused' | 'held' | 'halted';

export interface Stats {
  at: string;
  totals: Record<Decision, number>;
  per_second: Record<Decision, number>;
  sessions: number;
  connections: Record<string, number> | null;
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
  top: { window_s: number; identities: { name: string; statements: number }[]; tables: { name: string; statements: number }[]; scanned: number } | null;
}

export interface ApprovalRule {
  rule: string;
  reason?: string;
  groups: string[];
  count: number;
  remember?: boolean;
}

export interface Approval {
  id: string;
  status: string;
  identity: string;
  onBehalfOf?: string;
  database: string;
  environment?: string;
  sql: string;
  params?: (string | null)[];
  rules: ApprovalRule[];
  tables: string[];
  classes: string[];
  intent: Record<string, string>;
  instance: string;
  session?: string;
  mode: string;
  createdAt: string;
  expiresAt: string;
  decidedAt?: string;
  decisions: { approver: string; decision: string; reason: string; at: string }[];
  sqlLength: number;
  sqlSha256: string;
  sqlTruncated: boolean;
}

export interface SessionRow {
  id: string;
  identity: string;
  kind: string;
  on_behalf_of: string | null;
  auth: string;
  database: string;
  client_address: string;
  client_port: number;
  tls: boolean;
  application_name: string | null;
  started_at: string;
  state: string;
  approval_request: string | null;
  statement: string | null;
  statement_started_at: string | null;
  statement_duration_ms: number | null;
}

export interface AuditRecord {
  seq: number;
  ts: string;
  instance: string;
  type: string;
  data: Record<string, unknown>;
  prev: string;
  hash: string;
}

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

export interface Replay {
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
