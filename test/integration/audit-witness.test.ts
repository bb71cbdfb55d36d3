/**
 * A real Warden with a signing key and two witnesses (a file in another
 * directory, a PostgreSQL table): every checkpoint it signs reaches both; the
 * audit and state files it creates are 0600. When the tail of the log is cut
 * together with its stored checkpoints, `warden audit verify --config` reports
 * `truncated` from the witnesses alone (no --checkpoints export), and so does
 * the admin API's verify of a Warden restarted on the cut log.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PgCluster } from '../../src/embedded/pg-cluster.js';
import { baseYaml, PASSWORDS, startCluster, startEnv, type TestEnv } from '../helpers/warden-env.js';
import { runCli } from '../helpers/warden-process.js';

const umask = process.umask(0o022);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-witness-it-'));
const witnessDir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-witness-vol-'));
const db = path.join(dir, 'audit.db');
const stateDb = path.join(dir, 'state.db');
const witnessFile = path.join(witnessDir, 'checkpoints.jsonl');
const keyFile = path.join(dir, 'signing.pem');
fs.writeFileSync(keyFile, crypto.generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
const configFile = path.join(dir, 'warden.yaml');
const mode = (f: string): number => fs.statSync(f).mode & 0o777;
const basic = { authorization: `Basic ${Buffer.from(`alice:${PASSWORDS.alice}`).toString('base64')}` };

let cluster: PgCluster;
let env: TestEnv;
let yaml: string;
let pgWitness: string;

interface VerifyJson {
  ok: boolean;
  witnesses: { description: string; checkpoints: number; error?: string }[];
  instances: { instance: string; report: { problems: { kind: string; seq: number | null }[] } }[];
}

async function statements(n: number): Promise<void> {
  const c = new pg.Client(env.client('alice'));
  await c.connect();
  try {
    for (let i = 0; i < n; i++) await c.query(`SELECT ${i} AS n`);
  } finally {
    await c.end();
  }
}

async function witnessSeqs(): Promise<{ file: number[]; pg: number[] }> {
  const file = fs
    .readFileSync(witnessFile, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => (JSON.parse(l) as { seq: number }).seq);
  // The table is created with the first checkpoint a postgres witness receives (in the background).
  const exists = (await cluster.query("SELECT to_regclass('warden_audit.witness_checkpoints') IS NOT NULL AS t", 'witness')).rows[0] as { t: boolean };
  if (!exists.t) return { file, pg: [] };
  const rows = (await cluster.query("SELECT seq FROM warden_audit.witness_checkpoints WHERE instance = 'witness-test' ORDER BY seq", 'witness')).rows as { seq: string }[];
  return { file, pg: rows.map((r) => Number(r.seq)) };
}

describe('checkpoint witnesses', () => {
  beforeAll(async () => {
    cluster = await startCluster();
    await cluster.query('CREATE DATABASE witness');
    pgWitness = cluster.url('witness');
    yaml = baseYaml(
      cluster.port,
      `admin: { host: 127.0.0.1, port: 0, auditors: [analysts] }
state: { store: "sqlite:${stateDb}" }
audit:
  store: sqlite:${db}
  instance: witness-test
  signing_key: ${keyFile}
  checkpoint_every: 5
  witness:
    - file:${witnessFile}
    - ${pgWitness}
`,
    );
    fs.writeFileSync(configFile, yaml);
    env = await startEnv({ cluster, yaml: () => yaml });
  });

  afterAll(async () => {
    await env?.stop();
    await cluster?.stop();
    process.umask(umask);
    fs.rmSync(dir, { recursive: true, force: true });
    fs.rmSync(witnessDir, { recursive: true, force: true });
  });

  it('the audit database (-wal, -shm), the state database and the witness file are 0600', async () => {
    await statements(3);
    expect(mode(db)).toBe(0o600);
    expect(mode(`${db}-wal`)).toBe(0o600);
    expect(mode(`${db}-shm`)).toBe(0o600);
    expect(mode(stateDb)).toBe(0o600);
    expect(mode(witnessFile)).toBe(0o600);
    // Whatever else Warden keeps beside them (the journal, locks): files 0600, directories 0700.
    const walk = (d: string): string[] => fs.readdirSync(d, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? [path.join(d, e.name), ...walk(path.join(d, e.name))] : [path.join(d, e.name)]));
    const found = walk(dir).filter((f) => f !== configFile);
    expect(found.length).toBeGreaterThanOrEqual(5);
    expect(found.map((f) => [path.relative(dir, f), mode(f).toString(8)])).toEqual(found.map((f) => [path.relative(dir, f), fs.statSync(f).isDirectory() ? '700' : '600']));
  });

  it('every signed checkpoint reaches both witnesses; the admin API verifies against them', async () => {
    await statements(12);
    let seqs = await witnessSeqs();
    // Checkpoints are published after the statements' records, in the background: wait for both.
    for (let i = 0; i < 100 && (seqs.file.length < 2 || seqs.pg.join() !== seqs.file.join()); i++) {
      await new Promise((r) => setTimeout(r, 50));
      seqs = await witnessSeqs();
    }
    expect(seqs.file.length).toBeGreaterThanOrEqual(2);
    expect(seqs.pg).toEqual(seqs.file);
    const stored = (await (await fetch(`http://127.0.0.1:${env.warden.admin!.port}/api/v1/audit/checkpoints`, { headers: basic })).json()) as { checkpoints: { seq: number }[] };
    expect(stored.checkpoints.map((c) => c.seq)).toEqual(expect.arrayContaining(seqs.file));
    const v = (await (await fetch(`http://127.0.0.1:${env.warden.admin!.port}/api/v1/audit/verify`, { headers: basic })).json()) as VerifyJson & { instances: { ok: boolean }[] };
    expect(v.ok).toBe(true);
    expect(v.witnesses.map((w) => w.description)).toEqual([`file:${witnessFile}`, `postgres://postgres@127.0.0.1:${cluster.port}/witness`]);
    expect(v.witnesses[0].checkpoints).toBeGreaterThanOrEqual(seqs.file.length);
    const metrics = await (await fetch(`http://127.0.0.1:${env.warden.admin!.port}/metrics`)).text();
    expect(Number(/^warden_audit_witness_published_total (\d+)$/m.exec(metrics)?.[1])).toBeGreaterThanOrEqual(2 * seqs.file.length);
    expect(metrics).toMatch(/^warden_audit_witness_failures_total 0$/m);
  });

  it('a tail cut with its stored checkpoints: verify --config reports truncated from the witnesses (exit 1)', async () => {
    await env.warden.close(); // the final checkpoint is signed and witnessed at shutdown
    const { file } = await witnessSeqs();
    const last = file.at(-1)!;
    const before = await runCli(['audit', 'verify', '--config', configFile]);
    expect(before.code, before.out + before.err).toBe(0);
    expect(before.out).toContain(`witness file:${witnessFile}: ${file.length} checkpoint(s)`);

    // The attacker removes the last 6 records, their index terms and every checkpoint beyond them.
    const raw = new Database(db);
    const cut = last - 6;
    raw.prepare('DELETE FROM records WHERE seq > ?').run(cut);
    raw.prepare('DELETE FROM terms WHERE seq > ?').run(cut);
    raw.prepare('DELETE FROM checkpoints WHERE seq > ?').run(cut);
    raw.close();

    const after = await runCli(['audit', 'verify', '--config', configFile]);
    expect(after.code, after.out + after.err).toBe(1);
    expect(after.out).toMatch(new RegExp(`truncated at seq ${last} .*at least 6 record\\(s\\) were cut from the tail`));
    const json = JSON.parse((await runCli(['audit', 'verify', '--config', configFile, '--json'])).out) as VerifyJson;
    expect(json.ok).toBe(false);
    expect(json.instances[0].report.problems).toContainEqual({ kind: 'truncated', seq: last, index: expect.any(Number), message: expect.any(String) });

    // The store alone cannot see the cut: that is what the witness is for.
    const alone = await runCli(['audit', 'verify', '--config', configFile, '--no-witness']);
    expect(alone.code, alone.out).toBe(0);
    // One witness named on the command line (the PostgreSQL one) is enough.
    const pgOnly = await runCli(['audit', 'verify', '--config', configFile, '--witness', pgWitness]);
    expect(pgOnly.code).toBe(1);
    expect(pgOnly.out).toContain(`truncated at seq ${last}`);
    // Without a config (a copy of the store, say), witnesses are named on the command line.
    const copy = await runCli(['audit', 'verify', '--store', `sqlite:${db}`, '--witness', `file:${witnessFile}`]);
    expect(copy.code).toBe(1);
    expect(copy.out).toContain(`truncated at seq ${last}`);
    // A witness that is gone fails verification instead of passing quietly.
    const gone = await runCli(['audit', 'verify', '--config', configFile, '--witness', `file:${path.join(witnessDir, 'absent.jsonl')}`]);
    expect(gone.code).toBe(1);
    expect(gone.out).toContain(`FAIL witness file:${path.join(witnessDir, 'absent.jsonl')}: ${path.join(witnessDir, 'absent.jsonl')} does not exist`);
    const bad = await runCli(['audit', 'verify', '--config', configFile, '--witness', 'stdout']);
    expect(bad.code).toBe(2);
    expect(bad.err).toContain('only file:PATH and postgres://... witnesses can be read back');
  });

  it('a Warden restarted on the cut log: GET /api/v1/audit/verify reports the witnessed checkpoints past the cut; witness=false skips them', async () => {
    const { file } = await witnessSeqs();
    const last = file.at(-1)!;
    await env.restart({ yaml });
    const base = `http://127.0.0.1:${env.warden.admin!.port}/api/v1/audit/verify`;
    type Api = { ok: boolean; witnesses: { checkpoints: number }[]; instances: { problems: { kind: string; seq: number | null }[] }[] };
    const pinned = (v: Api) => v.instances[0].problems.filter((p) => p.seq === last && (p.kind === 'truncated' || p.kind === 'checkpoint-mismatch'));
    const v = (await (await fetch(base, { headers: basic })).json()) as Api;
    expect(v.ok).toBe(false);
    expect(v.witnesses).toHaveLength(2);
    // The chain the restarted Warden continues has no record `last` with the signed hash.
    expect(pinned(v).length).toBeGreaterThanOrEqual(1);
    const skip = (await (await fetch(`${base}?witness=false`, { headers: basic })).json()) as Api;
    expect(skip.witnesses).toEqual([]);
    expect(pinned(skip)).toEqual([]);
  });
});
