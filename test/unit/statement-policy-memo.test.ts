/** The per-session verdict memo: reached by literal shape, never confused with a text that looks like a shape. */
import { beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { createStatementPolicy } from '../../src/governance/statement-policy.js';
import { silentLogger } from '../../src/log/logger.js';
import type { SessionInfo, StatementSource } from '../../src/contract/statement-hooks.js';
import { initSqlParser } from '../../src/sql/index.js';

const config = parseConfig(
  `version: 1
databases:
  app: { upstream: "postgres://svc@127.0.0.1/app" }
identities:
  - { name: bob, kind: service, password: x }
rules:
  - { name: no-n, match: { columns: ["public.t.n", "public.t.s"] }, action: deny }
`,
  '/test/warden.yaml',
  {},
);

function session(): SessionInfo {
  return {
    id: 's',
    identity: config.identities[0],
    auth: { method: 'password' },
    database: config.databases.app,
    clientAddress: '127.0.0.1',
    clientPort: 1,
    tls: false,
    startupParams: new Map(),
    wardenSettings: new Map(),
    parameters: new Map(),
    txStatus: 'I',
    upstreamSearchPath: 'public',
    onInterrupt: () => () => undefined,
  };
}

beforeAll(async () => {
  await initSqlParser();
});

describe('statement verdict memo', () => {
  /** A fresh policy and session; returns a function deciding one statement after another. */
  const start = () => {
    const policy = createStatementPolicy(config, silentLogger());
    const s = session();
    policy.hooks.sessionStart?.(s);
    return (next: string) => {
      const stmt: StatementSource = { protocol: 'simple', sql: next };
      const v = policy.hooks.statement!(s, stmt);
      if (v instanceof Promise) throw new Error('expected a synchronous verdict');
      return v.action;
    };
  };

  it('shares a verdict between texts that differ only in literals', () => {
    const decide = start();
    expect(decide('SELECT a FROM t WHERE id = 1')).toBe('forward');
    expect(decide('SELECT a FROM t WHERE id = 2')).toBe('forward');
    expect(decide('SELECT n FROM t WHERE id = 3')).toBe('error');
  });

  it('does not take the verdict of a shape for a text that spells the shape', () => {
    const decide = start();
    // The shape of the first text is `SELECT ?n FROM t`; the second text is that string, and
    // applies a prefix operator `?` to the denied column n.
    expect(decide('SELECT 5 FROM t')).toBe('forward');
    expect(decide('SELECT ?n FROM t')).toBe('error');
  });

  it('does not confuse a text that spells a placeholder next to a real literal with another text', () => {
    // Both texts have literals, and `?n` spelled in the second makes its shape
    // `SELECT ?n, ?n FROM t`, the first one's shape. Its analysis must be its own.
    for (const [first, second] of [
      ['SELECT 1, 5 FROM t', 'SELECT ?n, 5 FROM t'],
      ["SELECT 'x', 5 FROM t", 'SELECT ?s, 5 FROM t'],
    ]) {
      const decide = start();
      expect(decide(first)).toBe('forward');
      expect(decide(second)).toBe('error');
      // A fresh session: the shared analysis cache must not answer for it either.
      expect(start()(second)).toBe('error');
    }
  });
});
