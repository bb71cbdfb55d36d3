/**
 * A statement whose statement.begin record cannot be written is refused with
 * 58030; the message names `audit.on_failure is block` only under `block`.
 */
import { describe, expect, it } from 'vitest';
import { AuditUnavailableError, type AuditLog } from '../../src/audit/log.js';
import { createStatementAuditor } from '../../src/governance/statement-audit.js';
import { silentLogger } from '../../src/log/logger.js';
import type { WardenConfig } from '../../src/config/types.js';
import type { SessionInfo, StatementSource } from '../../src/contract/statement-hooks.js';

const session = {
  id: 's1',
  identity: { name: 'alice', kind: 'human', groups: [] },
  auth: { method: 'password' },
  database: { name: 'app', environment: 'test' },
  wardenSettings: new Map(),
  startupParams: new Map(),
  txStatus: 'I',
} as unknown as SessionInfo;
const stmt: StatementSource = { protocol: 'simple', sql: 'SELECT 1' };

function refusalUnder(onFailure: 'block' | 'continue') {
  const audit = {
    onFailure,
    record: () => {},
    writeAhead: () => Promise.reject(new AuditUnavailableError('Warden is shutting down')),
    // The synchronous path declines (as it does when the log is closing): the queued path refuses.
    writeNow: () => null,
  } as unknown as AuditLog;
  const auditor = createStatementAuditor({ audit, config: {} as WardenConfig, log: silentLogger() });
  return auditor.statement(session, stmt, { ok: false, sql: 'SELECT 1', error: 'stand-in' }, null, { action: 'forward' });
}

describe('statement.begin not written', () => {
  it('under block: refused, naming audit.on_failure block', async () => {
    const v = await refusalUnder('block');
    expect(v.action === 'error' && v.error.code).toBe('58030');
    expect(v.action === 'error' && v.error.message).toMatch(/Warden is shutting down\); the statement was not run because audit\.on_failure is block$/);
  });

  it('under continue: refused without claiming block, and the hint says why', async () => {
    const v = await refusalUnder('continue');
    expect(v.action === 'error' && v.error.code).toBe('58030');
    expect(v.action === 'error' && v.error.message).toMatch(/Warden is shutting down\); the statement was not run$/);
    expect(v.action === 'error' && v.error.hint).toMatch(/on_failure: continue .* this record was lost/);
  });
});
