/**
 * The statement pipeline (src/governance/statement-pipeline.ts) in parts, with
 * stand-in steps: guard → policy → approval → masking → audit, each verdict
 * built once; what each step sees and in which order, and the counters.
 */
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/log/logger.js';
import { statementPipeline, type PolicyStep, type Ruling } from '../../src/governance/statement-pipeline.js';
import type { ApprovalResult, ApprovalService } from '../../src/governance/approvals.js';
import type { MaskingService } from '../../src/governance/masking.js';
import type { StatementAuditor } from '../../src/governance/statement-audit.js';
import type { Decision } from '../../src/policy/index.js';
import type { Analysis } from '../../src/sql/index.js';
import type { RowRewriter, SessionInfo, StatementOutcome, StatementSource, Verdict } from '../../src/contract/statement-hooks.js';

const analysis: Analysis = { ok: false, sql: 'SELECT 1', error: 'stand-in' };
const session = { id: 's1', identity: { name: 'alice', groups: [] } } as unknown as SessionInfo;
const stmt: StatementSource = { protocol: 'simple', sql: 'SELECT 1' };

function decision(action: Decision['action'], masked = false): Decision {
  return { action, reason: `rule "r" says ${action}`, decisive: 'r', matched: [], statements: [], masked, approvals: [], sensitiveTypes: [] };
}

interface Harness {
  hooks: ReturnType<typeof statementPipeline>;
  stats: { decided: number; refused: number };
  steps: string[];
}

function harness(o: {
  ruling: Ruling;
  approval?: ApprovalResult;
  mask?: Verdict;
  audit?: boolean;
}): Harness {
  const steps: string[] = [];
  const stats = { decided: 0, refused: 0 };
  const policy: PolicyStep = {
    rule: () => {
      steps.push('policy');
      stats.decided++;
      return o.ruling;
    },
    sessionStart: () => steps.push('policy.start'),
    sessionEnd: () => steps.push('policy.end'),
  };
  const approvals = o.approval
    ? ({
        approve: async () => {
          steps.push('approval');
          return o.approval!;
        },
      } as unknown as ApprovalService)
    : undefined;
  const masking = o.mask
    ? ({
        verdict: () => {
          steps.push('masking');
          return o.mask!;
        },
      } as unknown as MaskingService)
    : undefined;
  const auditor: StatementAuditor | undefined = o.audit
    ? {
        statement: (_s, _stmt, _a, d, v) => {
          steps.push(`audit:${v.action}:${d?.action ?? 'none'}`);
          return v;
        },
        sessionStart: () => steps.push('audit.start'),
        sessionEnd: () => steps.push('audit.end'),
        loginFailed: () => steps.push('audit.login'),
      }
    : undefined;
  const hooks = statementPipeline({ policy, stats, log: silentLogger(), approvals, masking, auditor });
  return { hooks, stats, steps };
}

const rows = { describe: () => {}, rewrite: (raw: Buffer) => raw } satisfies RowRewriter;

describe('statement pipeline', () => {
  it('an allowed statement is forwarded synchronously, with the policy onDone, and audited last', () => {
    const done: StatementOutcome[] = [];
    const h = harness({ ruling: { analysis, decision: decision('allow'), onDone: (x) => done.push(x) }, audit: true });
    const v = h.hooks.statement!(session, stmt);
    expect(v).not.toBeInstanceOf(Promise);
    expect((v as Verdict).action).toBe('forward');
    (v as Verdict).onDone?.({ tags: ['SELECT 1'], rows: 1 });
    expect(done).toHaveLength(1);
    expect(h.steps).toEqual(['policy', 'audit:forward:allow']);
  });

  it('a refusal by the policy skips approval and masking, is audited, and keeps no onDone', () => {
    const h = harness({
      ruling: { analysis, decision: decision('approve'), refusal: { code: '42501', message: 'no approvals here' } },
      approval: { approved: true },
      mask: { action: 'forward', rows },
      audit: true,
    });
    const v = h.hooks.statement!(session, stmt) as Verdict;
    expect(v).toEqual({ action: 'error', error: { code: '42501', message: 'no approvals here' } });
    expect(h.steps).toEqual(['policy', 'audit:error:approve']);
  });

  it('approve: the approval comes first, then masking when the decision also masks, then the audit', async () => {
    const done: StatementOutcome[] = [];
    const h = harness({
      ruling: { analysis, decision: decision('approve', true), onDone: (x) => done.push(x) },
      approval: { approved: true },
      mask: { action: 'forward', rows, masking: { columns: [] } },
      audit: true,
    });
    const v = await h.hooks.statement!(session, stmt);
    expect(h.steps).toEqual(['policy', 'approval', 'masking', 'audit:forward:approve']);
    expect(v.action === 'forward' && v.rows).toBe(rows);
    v.onDone?.({ tags: [], rows: 0 });
    expect(done).toHaveLength(1);
  });

  it('approve without masking: the approved statement runs as it is', async () => {
    const h = harness({ ruling: { analysis, decision: decision('approve') }, approval: { approved: true }, mask: { action: 'forward', rows } });
    const v = await h.hooks.statement!(session, stmt);
    expect(v).toEqual({ action: 'forward' });
    expect(h.steps).toEqual(['policy', 'approval']);
  });

  it('a refused approval ends there (no masking) and is counted once', async () => {
    const h = harness({
      ruling: { analysis, decision: decision('approve', true), onDone: () => {} },
      approval: { approved: false, error: { code: '42501', message: 'denied by dana' } },
      mask: { action: 'forward', rows },
    });
    const v = await h.hooks.statement!(session, stmt);
    expect(v).toEqual({ action: 'error', error: { code: '42501', message: 'denied by dana' } });
    expect(h.steps).toEqual(['policy', 'approval']);
    expect(h.stats).toEqual({ decided: 1, refused: 1 });
  });

  it('a masking refusal after an approval is counted once', async () => {
    const h = harness({
      ruling: { analysis, decision: decision('approve', true) },
      approval: { approved: true },
      mask: { action: 'error', error: { code: '42501', message: 'masking cannot cover it' } },
    });
    const v = await h.hooks.statement!(session, stmt);
    expect(v.action).toBe('error');
    expect(h.stats.refused).toBe(1);
  });

  it('mask: the masking verdict carries the policy onDone', () => {
    const done: StatementOutcome[] = [];
    const h = harness({ ruling: { analysis, decision: decision('mask'), onDone: (x) => done.push(x) }, mask: { action: 'forward', rows } });
    const v = h.hooks.statement!(session, stmt) as Verdict;
    expect(v.action === 'forward' && v.rows).toBe(rows);
    v.onDone?.({ tags: [], rows: 0 });
    expect(done).toHaveLength(1);
  });

  it('the guard refuses an unreadable text before the policy, and records it', () => {
    const h = harness({ ruling: { analysis, decision: decision('allow') }, audit: true });
    const v = h.hooks.statement!(session, { ...stmt, unreadable: { code: '0A000', message: 'cannot read BIG5' } }) as Verdict;
    expect(v).toEqual({ action: 'error', error: { code: '0A000', message: 'cannot read BIG5' } });
    expect(h.steps).toEqual(['audit:error:none']);
    expect(h.stats).toEqual({ decided: 1, refused: 1 });
  });

  it('session start and end reach the policy, then the audit', () => {
    const h = harness({ ruling: { analysis, decision: decision('allow') }, audit: true });
    h.hooks.sessionStart!(session);
    h.hooks.sessionEnd!(session, 'client sent Terminate');
    expect(h.steps).toEqual(['policy.start', 'audit.start', 'policy.end', 'audit.end']);
  });
});
