/**
 * Statement text in the audit: recorded whole up to the approvals' cap (1 MiB), and above it
 * with a visible marker, the full length and the SHA-256 of the full text — never cut silently.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { baseYaml, startEnv, type TestEnv } from '../helpers/warden-env.js';
import { openSqliteStore } from '../../src/audit/store-sqlite.js';
import type { AuditRecord } from '../../src/audit/chain.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-audit-text-'));
const dbFile = path.join(dir, 'audit.db');
let env: TestEnv;

beforeAll(async () => {
  env = await startEnv({ yaml: (p) => baseYaml(p, `audit:\n  store: sqlite:${dbFile}\n`).replace('listen: { host: 127.0.0.1, port: 0 }', 'listen: { host: 127.0.0.1, port: 0, max_message_size: 4MB }') });
});

afterAll(async () => {
  await env?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

async function beginOf(marker: string): Promise<Record<string, unknown>> {
  const reader = await openSqliteStore(dbFile, { readOnly: true });
  try {
    const found: AuditRecord[] = [];
    for await (const r of reader.query({})) if (r.type === 'statement.begin' && String((r.data as Record<string, unknown>).sql).includes(marker)) found.push(r);
    expect(found).toHaveLength(1);
    return found[0]!.data as Record<string, unknown>;
  } finally {
    await reader.close();
  }
}

it('a 20,000-character statement is recorded whole, its end included', async () => {
  const sql = `SELECT 1 /* ${'x'.repeat(20_000)} */ WHERE 'tail-1' = 'tail-1' OR true`;
  const c = await env.connect('alice');
  await c.query(sql);
  await c.end();
  const data = await beginOf('tail-1');
  expect(data.sql).toBe(sql);
  expect(data.sql_length).toBeUndefined();
});

it('above 1 MiB: the start, a visible marker with the full length and the SHA-256 of the full text', async () => {
  const sql = `SELECT 2 /* tail-2 ${'y'.repeat(1_100_000)} */ OR true`;
  const c = await env.connect('alice');
  await c.query(sql).catch(() => undefined);
  await c.end();
  const data = await beginOf('tail-2');
  const shown = String(data.sql);
  expect(shown.length).toBeLessThan(sql.length);
  expect(shown).toContain(`of ${sql.length.toLocaleString('en-US')} characters`);
  const sha = crypto.createHash('sha256').update(sql, 'utf8').digest('hex');
  expect(shown).toContain(sha);
  expect(data.sql_length).toBe(sql.length);
  expect(data.sql_sha256).toBe(sha);
});
