/**
 * pgjdbc itself through Warden, with audit and masking on: a batch with one
 * bad row fails with the row's error and the connection goes on; a cursor read
 * in chunks (fetch size) with statements between the chunks stays masked.
 * Skipped when Java or the pgjdbc jar is not on the machine
 * (WARDEN_PGJDBC_JAR, or the local Maven repository).
 */
import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { baseYaml, direct, PASSWORDS, startEnv, type TestEnv } from '../helpers/warden-env.js';

function findJar(): string | null {
  if (process.env.WARDEN_PGJDBC_JAR && fs.existsSync(process.env.WARDEN_PGJDBC_JAR)) return process.env.WARDEN_PGJDBC_JAR;
  const dir = path.join(os.homedir(), '.m2/repository/org/postgresql/postgresql');
  if (!fs.existsSync(dir)) return null;
  for (const v of fs.readdirSync(dir).sort().reverse()) {
    const jar = path.join(dir, v, `postgresql-${v}.jar`);
    if (fs.existsSync(jar)) return jar;
  }
  return null;
}

const jar = findJar();
const hasJava = (() => {
  try {
    return fs.existsSync('/usr/bin/java') || (process.env.JAVA_HOME !== undefined && fs.existsSync(path.join(process.env.JAVA_HOME, 'bin/java')));
  } catch {
    return false;
  }
})();

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-jdbc-'));
const keyFile = path.join(dir, 'signing.pem');
fs.writeFileSync(keyFile, crypto.generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }));
const RULES = `sensitive:
  columns:
    public.customers.email: email
  key: jdbc-test-key-0123456789abcdef
rules:
  - name: mask-pii
    match: {}
    action: mask
audit:
  store: sqlite:${path.join(dir, 'audit.db')}
  instance: jdbc-test
  signing_key: ${keyFile}
`;

function runJava(args: string[]): Promise<{ out: string; err: string; code: number }> {
  return new Promise((resolve) => {
    execFile('java', ['-cp', jar!, path.resolve('test/drivers/JdbcBatch.java'), ...args], { timeout: 120_000 }, (err, out, errOut) =>
      resolve({ out, err: errOut, code: err ? ((err as { code?: number }).code ?? 1) : 0 }),
    );
  });
}

describe.skipIf(!jar || !hasJava)('pgjdbc through Warden (audit and masking on)', () => {
  let env: TestEnv;
  beforeAll(async () => {
    env = await startEnv({ yaml: (p) => baseYaml(p, RULES) });
    for (const s of [
      'CREATE TABLE t (id int PRIMARY KEY, v text)',
      'CREATE TABLE customers (id int PRIMARY KEY, email text)',
      "INSERT INTO customers SELECT g, 'user' || g || '@example.com' FROM generate_series(1, 5) g",
      'ALTER TABLE t OWNER TO warden_svc',
      'ALTER TABLE customers OWNER TO warden_svc',
    ])
      await direct(env.cluster, s);
  }, 60_000);
  afterAll(async () => {
    await env?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  for (const n of [10, 1000]) {
    it(`a batch of ${n} with a duplicate 4th row: 23505, the connection goes on; a fetch-size cursor stays masked`, async () => {
      const base = n * 10;
      const url = `jdbc:postgresql://127.0.0.1:${env.warden.port}/app?sslmode=disable`;
      const r = await runJava([url, 'alice', PASSWORDS.alice, String(base), String(n)]);
      expect(r.err).not.toMatch(/lost track|Exception in thread/);
      const lines = r.out.trim().split('\n');
      expect(lines[0]).toBe('batch failed 23505');
      expect(lines[1]).toBe('after 42');
      const rows = lines.filter((l) => l.startsWith('row '));
      expect(rows.map((l) => l.split(' ')[1])).toEqual(['1', '2', '3', '4', '5']);
      for (const l of rows) expect(l).not.toMatch(/user\d@example\.com/);
      expect(lines).toContain('between 7');
      expect(lines.at(-1)).toBe('done');
      expect(r.code).toBe(0);
      expect(Number((await direct(env.cluster, `SELECT count(*) AS n FROM t WHERE id >= ${base} AND id < ${base + n}`)).rows[0].n)).toBe(0);
    }, 120_000);
  }
});
