/** The admin API's answers, as far as the console reads them (the shared ones: src/contract/admin-api.ts). */
export type {
  DecisionName as Decision,
  SessionReplay as Replay,
  ReplayStatement,
  SessionView as SessionRow,
  StatsEvent as Stats,
} from '../../contract/admin-api.js';

export interface Me {
  identity: string;
  kind: string;
  groups: string[];
  csrf: string;
  expires_at: string;
  idle_timeout_ms: number;
  can: { operate: boolean; audit: boolean; approve: boolean };
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

export interface AuditRecord {
  seq: number;
  ts: string;
  instance: string;
  type: string;
  data: Record<string, unknown>;
  prev: string;
  hash: string;
}

