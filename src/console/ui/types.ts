/** The admin API's answers, as far as the console reads them (the shared ones: src/contract/admin-api.ts). */
export type {
  ApprovalView as Approval,
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

export interface AuditRecord {
  seq: number;
  ts: string;
  instance: string;
  type: string;
  data: Record<string, unknown>;
  prev: string;
  hash: string;
}

