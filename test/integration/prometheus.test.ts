/**
 * A real Prometheus (Debian's `prometheus` package) scrapes Warden's /metrics
 * every second; its HTTP API then returns warden_statements_total by action
 * for the statements run, and the metric types it read (counter, histogram)
 * from the exposition. Skipped when no prometheus binary is installed
 * (.ci/run installs it).
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startEnv, baseYaml, type TestEnv } from '../helpers/warden-env.js';
import { freePort } from '../../src/embedded/free-port.js';

const PROMETHEUS = ['/usr/bin/prometheus', '/usr/local/bin/prometheus'].find((p) => existsSync(p));

let env: TestEnv;
let prom: ChildProcess | undefined;
let promLog = '';
let dir: string;
let api: string;

beforeAll(async () => {
  if (!PROMETHEUS) return;
  env = await startEnv({
    yaml: (p) => baseYaml(p, 'admin: { host: 127.0.0.1, port: 0 }\nrules:\n  - name: no-drop\n    match: { statement: [drop] }\n    action: deny\n'),
  });
  dir = mkdtempSync(path.join(os.tmpdir(), 'warden-prometheus-'));
  const config = path.join(dir, 'prometheus.yml');
  writeFileSync(
    config,
    `global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: warden
    static_configs:
      - targets: ['127.0.0.1:${env.warden.admin!.port}']
`,
  );
  const port = await freePort();
  api = `http://127.0.0.1:${port}/api/v1`;
  prom = spawn(PROMETHEUS, [`--config.file=${config}`, `--storage.tsdb.path=${path.join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  prom.stdout!.on('data', (b: Buffer) => (promLog += b.toString()));
  prom.stderr!.on('data', (b: Buffer) => (promLog += b.toString()));
}, 30_000);

afterAll(async () => {
  if (prom && prom.exitCode === null) {
    const exited = new Promise((r) => prom!.once('exit', r));
    prom.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 5_000))]);
    if (prom.exitCode === null) prom.kill('SIGKILL');
  }
  await env?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

interface Vector {
  metric: Record<string, string>;
  value: [number, string];
}

async function query(q: string): Promise<Vector[] | undefined> {
  try {
    const r = await fetch(`${api}/query?query=${encodeURIComponent(q)}`);
    if (!r.ok) return undefined;
    const body = (await r.json()) as { status: string; data: { resultType: string; result: Vector[] } };
    return body.status === 'success' ? body.data.result : undefined;
  } catch {
    return undefined; // not listening yet
  }
}

async function until<T>(f: () => Promise<T | undefined>, ms: number, what: string): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}; prometheus said:\n${promLog.slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

it('Prometheus scrapes /metrics and returns warden_statements_total by action', async (ctx) => {
  if (!PROMETHEUS) ctx.skip();
  const c = await env.connect('agent');
  try {
    for (let i = 0; i < 4; i++) await c.query('SELECT 1');
    for (let i = 0; i < 2; i++) await expect(c.query('DROP TABLE nothing')).rejects.toMatchObject({ code: '42501' });
  } finally {
    await c.end();
  }
  // The series as Prometheus stored them, summed by action, once a scrape after the statements came in.
  const byAction = await until(
    async () => {
      const r = await query('sum by (action) (warden_statements_total{job="warden",database="app",identity_kind="agent"})');
      const m = new Map((r ?? []).map((v) => [v.metric.action, Number(v.value[1])]));
      return (m.get('allow') ?? 0) >= 4 && m.get('deny') === 2 ? m : undefined;
    },
    30_000,
    'warden_statements_total in Prometheus',
  );
  expect([...byAction.keys()].sort()).toEqual(['allow', 'deny']);
  const deny = await query('warden_statements_total{action="deny"}');
  expect(deny).toHaveLength(1);
  expect(deny![0]!.metric).toMatchObject({ database: 'app', identity_kind: 'agent', action: 'deny', rule: 'no-drop', job: 'warden' });

  // Prometheus read the types from the exposition: counters, histograms, gauges.
  const meta = (await (await fetch(`${api}/metadata`)).json()) as { data: Record<string, { type: string; unit: string }[]> };
  expect(meta.data.warden_statements_total?.[0]?.type).toBe('counter');
  expect(meta.data.warden_statements_refused_total?.[0]?.type).toBe('counter');
  expect(meta.data.warden_statement_overhead_seconds?.[0]?.type).toBe('histogram');
  expect(meta.data.warden_statement_upstream_seconds?.[0]?.type).toBe('histogram');
  expect(meta.data.warden_sessions?.[0]?.type).toBe('gauge');
  expect(meta.data.process_cpu_seconds_total?.[0]?.type).toBe('counter');
  expect(Object.keys(meta.data).filter((n) => n.startsWith('warden_process_'))).toEqual([]);

  // A histogram Prometheus can compute with: the upstream time's median is a finite number of seconds.
  const count = await query('sum(warden_statement_upstream_seconds_count{database="app"})');
  expect(Number(count?.[0]?.value[1])).toBeGreaterThanOrEqual(4);
  const p50 = await query('histogram_quantile(0.5, sum by (le) (warden_statement_upstream_seconds_bucket{database="app"}))');
  expect(Number(p50?.[0]?.value[1])).toBeGreaterThan(0);
  expect(Number(p50?.[0]?.value[1])).toBeLessThan(60);
}, 40_000);
