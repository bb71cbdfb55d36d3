/** Failed logins are rate-limited per identity and address, without telling whether the identity exists. */
import { afterAll, beforeAll, expect, it } from 'vitest';
import pg from 'pg';
import { startEnv, PASSWORDS, type TestEnv } from '../helpers/warden-env.js';

let env: TestEnv;

beforeAll(async () => {
  env = await startEnv({ loginRateLimit: { maxFailures: 3, windowMs: 60_000 } });
});

afterAll(async () => {
  await env?.stop();
});

async function login(user: string, password: string): Promise<string | undefined> {
  const c = new pg.Client({ ...env.client('alice'), user, password });
  try {
    await c.connect();
    await c.end();
    return undefined;
  } catch (err) {
    return (err as { code?: string }).code;
  }
}

it('refuses with 53300 after three failures, even with the right password; other identities unaffected', async () => {
  for (let i = 0; i < 3; i++) expect(await login('alice', 'wrong')).toBe('28P01');
  expect(await login('alice', PASSWORDS.alice)).toBe('53300');
  expect(await login('bob', PASSWORDS.bob)).toBeUndefined();
});

it('unknown identities are limited exactly like known ones', async () => {
  for (let i = 0; i < 3; i++) expect(await login('nobody-here', 'wrong')).toBe('28P01');
  expect(await login('nobody-here', 'wrong')).toBe('53300');
});

it('a success resets the count', async () => {
  expect(await login('agent', 'wrong')).toBe('28P01');
  expect(await login('agent', 'wrong')).toBe('28P01');
  expect(await login('agent', PASSWORDS.agent)).toBeUndefined();
  expect(await login('agent', 'wrong')).toBe('28P01');
  expect(await login('agent', 'wrong')).toBe('28P01');
  expect(await login('agent', PASSWORDS.agent)).toBeUndefined();
});
