/**
 * composeHooks (src/app.ts): the credential guard, the statement pipeline and
 * extra hooks chained; the first refusal stops the chain, completion callbacks
 * of both run, session events reach both in order.
 */
import { describe, expect, it } from 'vitest';
import { composeHooks, credentialGuard } from '../../src/app.js';
import type { SessionHooks, SessionInfo, StatementOutcome, StatementSource, Verdict } from '../../src/contract/statement-hooks.js';

const stmt: StatementSource = { protocol: 'simple', sql: 'SELECT 1' };
const session = { id: 's1', auth: { method: 'password' } } as unknown as SessionInfo;
const outcome: StatementOutcome = { tags: ['SELECT 1'], rows: 1 };

function recorder(name: string, log: string[], verdict: Verdict | Promise<Verdict>): SessionHooks {
  return {
    statement: () => {
      log.push(`${name}.statement`);
      return verdict;
    },
    sessionStart: () => log.push(`${name}.start`),
    sessionEnd: () => log.push(`${name}.end`),
    loginFailed: () => log.push(`${name}.login`),
  };
}

describe('composeHooks', () => {
  it('asks the first, then the second; both onDone callbacks run, the first one first', async () => {
    const log: string[] = [];
    const first = recorder('a', log, { action: 'forward', onDone: () => log.push('a.done') });
    const second = recorder('b', log, Promise.resolve<Verdict>({ action: 'forward', onDone: () => log.push('b.done') }));
    const v = await composeHooks(first, second).statement!(session, stmt);
    expect(v.action).toBe('forward');
    v.onDone?.(outcome);
    expect(log).toEqual(['a.statement', 'b.statement', 'a.done', 'b.done']);
  });

  it('a refusal by the first stops the chain: the second is never asked', () => {
    const log: string[] = [];
    const refusal: Verdict = { action: 'error', error: { code: '28000', message: 'expired' }, fatal: true };
    const v = composeHooks(recorder('a', log, refusal), recorder('b', log, { action: 'forward' })).statement!(session, stmt);
    expect(v).toBe(refusal);
    expect(log).toEqual(['a.statement']);
  });

  it("the second's refusal is the verdict, and the first still hears how the statement ended", async () => {
    const log: string[] = [];
    const refusal: Verdict = { action: 'error', error: { code: '42501', message: 'denied' } };
    const v = await composeHooks(recorder('a', log, { action: 'forward', onDone: () => log.push('a.done') }), recorder('b', log, refusal)).statement!(
      session,
      stmt,
    );
    expect(v.action === 'error' && v.error).toEqual({ code: '42501', message: 'denied' });
    v.onDone?.(outcome);
    expect(log).toEqual(['a.statement', 'b.statement', 'a.done']);
  });

  it('session events and login failures reach both, first then second', () => {
    const log: string[] = [];
    const h = composeHooks(recorder('a', log, { action: 'forward' }), recorder('b', log, { action: 'forward' }));
    h.sessionStart!(session);
    h.sessionEnd!(session, 'client sent Terminate');
    h.loginFailed!({ identity: 'x', clientAddress: '127.0.0.1', reason: 'authentication failed', tls: false });
    expect(log).toEqual(['a.start', 'b.start', 'a.end', 'b.end', 'a.login', 'b.login']);
  });
});

describe('credentialGuard', () => {
  it('forwards a password session and ends an expired token session with a fatal 28000', () => {
    const g = credentialGuard(undefined).statement!;
    expect(g(session, stmt)).toEqual({ action: 'forward' });
    const expired = { ...session, auth: { method: 'token', tokenId: 'tok_1', expiresAt: new Date(Date.now() - 1000) } } as unknown as SessionInfo;
    const v = g(expired, stmt) as Verdict;
    expect(v.action === 'error' && v.fatal).toBe(true);
    expect(v.action === 'error' && v.error.code).toBe('28000');
    expect(v.action === 'error' && v.error.message).toMatch(/token tok_1 this session logged in with expired at/);
  });
});
