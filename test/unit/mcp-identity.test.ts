/** Which identity an MCP credential names (the listener then authenticates it): tokens by their verifier, JWTs by their claims. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { openStateStore } from '../../src/store/open.js';
import type { StateStore } from '../../src/store/types.js';
import { issueToken } from '../../src/governance/tokens.js';
import { callerOf } from '../../src/mcp/identity.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-mcp-id-'));
fs.writeFileSync(path.join(dir, 'jwks.json'), JSON.stringify({ keys: [] }));
const config = parseConfig(
  `version: 1
listen: { host: 127.0.0.1, port: 0 }
databases:
  app: { upstream: "postgres://svc:x@127.0.0.1:5432/app" }
  other: { upstream: "postgres://svc:x@127.0.0.1:5432/other" }
identities:
  - { name: alice, kind: human, password: a-pw }
  - { name: bot, kind: agent, groups: [agents], password: b-pw }
oidc:
  issuer: https://idp.test/
  audience: warden
  jwks: ${path.join(dir, 'jwks.json')}
  claims: { name: preferred_username, groups: groups, kind: kind }
`,
  path.join(dir, 'warden.yaml'),
  {},
);
let store: StateStore;
const id = (name: string) => config.identities.find((i) => i.name === name)!;
const jwt = (payload: Record<string, unknown>): string => `e30.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.sig`;

beforeAll(async () => {
  store = await openStateStore({ kind: 'sqlite', location: path.join(dir, 'state.db') });
});
afterAll(async () => {
  await store.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('callerOf', () => {
  it('finds the identity, on-behalf-of and scope of a valid token; nothing for unknown, expired or revoked ones', async () => {
    const a = await issueToken(store, id('alice'), { ttlMs: 60_000 });
    const b = await issueToken(store, id('bot'), { ttlMs: 60_000, onBehalfOf: 'alice', scope: 'other' });
    expect(await callerOf(config, store, a.token)).toMatchObject({ user: 'alice', credential: 'token' });
    expect(await callerOf(config, store, b.token)).toMatchObject({ user: 'bot', onBehalfOf: 'alice', scope: 'other', identity: { kind: 'agent' } });
    expect(await callerOf(config, store, 'wdt_' + 'a'.repeat(32))).toBeUndefined();
    expect(await callerOf(config, undefined, a.token)).toBeUndefined();
    const short = await issueToken(store, id('alice'), { ttlMs: 1_000 });
    expect(await callerOf(config, store, short.token, Date.now() + 2_000)).toBeUndefined();
    await store.revokeToken(b.record.id, new Date().toISOString());
    expect(await callerOf(config, store, b.token)).toBeUndefined();
    expect(await callerOf(config, store, 'alice-password')).toBeUndefined();
  });

  it("a JWT names the login the listener will map it to: the act claim's actor (an agent) acting for the subject; expired: nothing", async () => {
    const now = Math.floor(Date.now() / 1000);
    expect(await callerOf(config, store, jwt({ preferred_username: 'carol', groups: ['analysts'], exp: now + 60 }))).toMatchObject({
      user: 'carol',
      credential: 'jwt',
      identity: { name: 'carol', kind: 'human', groups: ['analysts'] },
    });
    expect(await callerOf(config, store, jwt({ preferred_username: 'alice-sso', act: { sub: 'trainer', groups: ['agents'] }, exp: now + 60 }))).toMatchObject({
      user: 'trainer',
      onBehalfOf: 'alice-sso',
      identity: { kind: 'agent', groups: ['agents'] },
    });
    expect(await callerOf(config, store, jwt({ preferred_username: 'carol', exp: now - 1 }))).toBeUndefined();
    expect(await callerOf({ ...config, oidc: undefined }, store, jwt({ preferred_username: 'carol' }))).toBeUndefined();
  });
});
