/** The admin listener: health and Prometheus metrics reflect what the proxy does. */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startEnv, baseYaml, type TestEnv } from '../helpers/warden-env.js';

let env: TestEnv;

beforeAll(async () => {
  env = await startEnv({
    yaml: (p) => baseYaml(p, 'admin: { host: 127.0.0.1, port: 0 }\nrules:\n  - name: no-drop\n    match: { statement: [drop] }\n    action: deny\n'),
  });
});

afterAll(async () => {
  await env?.stop();
});

it('serves /healthz and /metrics with session and statement counters', async () => {
  const admin = env.warden.admin!;
  expect(admin).toBeDefined();
  const c = await env.connect();
  try {
    await c.query('select 1');
    await expect(c.query('drop table nothing')).rejects.toMatchObject({ code: '42501' });
    const health = await (await fetch(`http://127.0.0.1:${admin.port}/healthz`)).json();
    expect(health).toEqual({ status: 'ok', sessions: 1 });
    const metrics = await (await fetch(`http://127.0.0.1:${admin.port}/metrics`)).text();
    expect(metrics).toMatch(/^warden_sessions 1$/m);
    expect(metrics).toMatch(/^warden_statements_refused_total 1$/m);
    expect(Number(/^warden_statements_decided_total (\d+)$/m.exec(metrics)?.[1])).toBeGreaterThanOrEqual(2);
  } finally {
    await c.end();
  }
});
