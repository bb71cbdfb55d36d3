/**
 * Commands that only look at the configuration (`databases list`, `identities list|show`,
 * `policy explain`, `policy test`) need none of its secrets (issue 19 §4): a `${NAME}` that is
 * not set stands for a placeholder they never use, while `warden start` still refuses it.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/warden-process.js';

let dir: string;
let file: string;
/** No variable of the file is set (and none leaks in from the test's own environment). */
const env = { APP_DB_PASSWORD: undefined, ALICE_PASSWORD: undefined, TRAINER_PASSWORD: undefined, MASK_KEY: undefined };

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-inspect-'));
  file = path.join(dir, 'warden.yaml');
  fs.writeFileSync(
    file,
    `version: 1
databases:
  app: { upstream: "postgres://svc:\${APP_DB_PASSWORD}@127.0.0.1:5432/app", environment: production }
identities:
  - { name: alice, kind: human, groups: [analysts], password: "\${ALICE_PASSWORD}" }
  - { name: trainer, kind: agent, groups: [ml], password: "\${TRAINER_PASSWORD}" }
sensitive:
  columns: { public.customers.email: email }
  key: \${MASK_KEY}
rules:
  - { name: agents-read-only, match: { kind: [agent], statement: [write] }, action: deny }
limits:
  - { name: agent-volume, match: { kind: [agent] }, max_rows: 1000 }
`,
  );
});

afterAll(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe('inspecting a configuration whose secrets are not set', () => {
  it('policy explain decides, lists the limits, and says why the catalog was not read', async () => {
    const r = await runCli(['policy', 'explain', '--config', file, '--as', 'trainer', 'DELETE FROM t'], env);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toContain('Decision: DENY — denied by rule "agents-read-only"');
    const s = await runCli(['policy', 'explain', '--config', file, '--as', 'trainer', '--json', 'SELECT * FROM customers'], env);
    expect(JSON.parse(s.out).decision.limits).toEqual(['agent-volume']);
    const f = await runCli(['policy', 'explain', '--config', file, '--as', 'trainer', 'SELECT f(1)'], env);
    expect(f.out).toMatch(/Catalog: not read \(APP_DB_PASSWORD.* not set: the upstream's credentials are unknown here\)/);
    // No placeholder is shown as a value.
    expect(f.out).not.toContain('warden-unset-');
  });

  it('identities and databases list', async () => {
    const i = await runCli(['identities', 'list', '--config', file, '--json'], env);
    expect(i.code).toBe(0);
    expect(JSON.parse(i.out).map((x: { name: string }) => x.name)).toEqual(['alice', 'trainer']);
    const d = await runCli(['databases', 'list', '--config', file], env);
    expect(d.code).toBe(0);
    expect(d.out).toContain('app');
    expect(d.out).not.toContain('warden-unset-');
  });

  it('start still refuses it, naming the variable', async () => {
    const r = await runCli(['start', '--config', file], env);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/environment variable APP_DB_PASSWORD is not set/);
  });
});
