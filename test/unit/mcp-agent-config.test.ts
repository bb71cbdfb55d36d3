/**
 * What `warden mcp` (stdio) loads of the configuration (src/mcp/agent-config.ts): the
 * listener's address, database names, identities' names/kinds/groups and the policy — no
 * upstream credential, password, masking key, state or audit store; unset variables in the
 * sections it does not load do not matter.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadAgentConfig } from '../../src/mcp/agent-config.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-mcp-agent-config-'));
const write = (text: string): string => {
  const f = path.join(dir, `c${Math.random().toString(36).slice(2)}.yaml`);
  fs.writeFileSync(f, text);
  return f;
};

const YAML = `version: 1
listen: { host: 10.0.0.5, port: 6433, tls: { cert: /nonexistent/cert.pem, key: /nonexistent/key.pem } }
admin: { host: 127.0.0.1, port: 7070, tls: { cert: /nonexistent/a.pem, key: /nonexistent/a-key.pem } }
databases:
  app: { upstream: "postgres://svc_user:upstream-secret-1@db.internal:5432/app", environment: prod, tls: verify-full, ca: /nonexistent/ca.pem }
  other: { upstream: "\${OTHER_UPSTREAM_URL}" }
identities:
  - { name: bot, kind: agent, groups: [agents], password: bot-secret-2 }
  - { name: dana, kind: human, groups: [dba], password: "\${DANA_PASSWORD}" }
  - { name: svc, kind: service, scram: "SCRAM-SHA-256$4096:c2FsdHNhbHRzYWx0$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=" }
sensitive:
  columns: { public.customers.email: email }
  key: mask-secret-3-0123456789
rules:
  - { name: no-drop, match: { statement: [drop] }, action: deny }
state: { store: "\${STATE_URL}" }
audit: { store: "jsonl:/nonexistent/dir/audit.jsonl" }
`;

describe('loadAgentConfig', () => {
  it('keeps what the MCP server uses and nothing secret; unset variables and unreadable files elsewhere do not matter', () => {
    const { config, listenTls } = loadAgentConfig(write(YAML), {});
    expect(config.listen).toMatchObject({ host: '10.0.0.5', port: 6433 });
    expect(config.listen.tls).toBeUndefined();
    expect(listenTls).toBe(true);
    expect(Object.keys(config.databases)).toEqual(['app', 'other']);
    expect(config.databases.app).toMatchObject({ environment: 'prod' });
    expect(config.identities.map((i) => [i.name, i.kind, i.groups])).toEqual([
      ['bot', 'agent', ['agents']],
      ['dana', 'human', ['dba']],
      ['svc', 'service', []],
    ]);
    expect(config.rules.map((r) => r.name)).toEqual(['no-drop']);
    expect(config.state).toBeUndefined();
    expect(config.audit).toBeUndefined();
    expect(config.admin).toBeUndefined();
    const text = JSON.stringify(config);
    for (const secret of ['upstream-secret-1', 'bot-secret-2', 'mask-secret-3', 'SCRAM-SHA-256', 'db.internal', 'STATE_URL', 'DANA_PASSWORD']) expect(text).not.toContain(secret);
  });

  it('the whole loader refuses the same file without the variables (what `warden mcp` did before)', async () => {
    const { loadConfig } = await import('../../src/config/load.js');
    expect(() => loadConfig(write(YAML), {})).toThrow(/not set|not a regular file|no such file|ENOENT/);
  });

  it('still reports problems in what it keeps (a bad rule)', () => {
    expect(() => loadAgentConfig(write(YAML.replace('action: deny', 'action: explode')), {})).toThrow(/rules/);
  });
});
