/**
 * Verdicts reached by literal shape, for counterexamples the literal-shape fuzzer
 * (fuzz-literal-shape.test.ts) found: each pair once shared a shape and so a verdict.
 */
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
  - { name: no-ssn, match: { columns: ["public.customers.ssn"] }, action: deny }
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

describe('verdicts shared by literal shape', () => {
  const start = () => {
    const policy = createStatementPolicy(config, silentLogger());
    const s = session();
    policy.hooks.sessionStart?.(s);
    return (sql: string) => {
      const stmt: StatementSource = { protocol: 'simple', sql };
      const v = policy.hooks.statement!(s, stmt);
      if (v instanceof Promise) throw new Error('expected a synchronous verdict');
      return v.action;
    };
  };

  it('a Unicode identifier with a harmless UESCAPE does not lend its verdict to the one naming a denied column', () => {
    const decide = start();
    // '#' leaves the name as written: column "s!0073n" (harmless, forwarded).
    expect(decide(`SELECT U&"s!0073n" UESCAPE '#' FROM customers WHERE id = 1`)).toBe('forward');
    // '!' makes !0073 the escape of 's': column ssn, denied. It used to take the verdict above.
    expect(decide(`SELECT U&"s!0073n" UESCAPE '!' FROM customers WHERE id = 2`)).toBe('error');
    // And a fresh session (the shared analysis cache) decides it the same way.
    expect(start()(`SELECT U&"s!0073n" UESCAPE '!' FROM customers WHERE id = 3`)).toBe('error');
  });
});
