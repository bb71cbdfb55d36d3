/**
 * Audit retention (pruned records leave a record that keeps the rest
 * verifiable; a deletion at the front without it is detected) and streaming
 * to a webhook and to OpenTelemetry (OTLP/HTTP JSON).
 */
import fs from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { AuditLog } from '../../src/audit/log.js';
import { openSqliteStore } from '../../src/audit/store-sqlite.js';
import { verifyStore } from '../../src/audit/verify-store.js';
import { createSinks } from '../../src/audit/sinks.js';
import { silentLogger } from '../../src/log/logger.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-audit-extras-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('retention', () => {
  it('prunes old records, records that it did, and the rest still verifies; a front deletion without it is caught', async () => {
    const file = path.join(dir, 'retention.db');
    const log = await AuditLog.open({ store: await openSqliteStore(file), instance: 'r', onFailure: 'block', log: silentLogger() });
    for (let i = 0; i < 5; i++) await log.writeAhead('statement.begin', { identity: 'old', n: i });
    await new Promise((r) => setTimeout(r, 20));
    const cut = new Date();
    await new Promise((r) => setTimeout(r, 20));
    for (let i = 0; i < 5; i++) await log.writeAhead('statement.begin', { identity: 'new', n: i });
    expect(await log.prune(cut)).toBe(5);
    await log.close();

    const reader = await openSqliteStore(file, { readOnly: true });
    const [ok] = await verifyStore(reader, {});
    expect(ok.report.problems).toEqual([]);
    expect(ok.startAfter?.seq).toBe(5);
    expect(ok.report.records).toBe(6); // 5 new + the audit.pruned record
    await reader.close();

    // Someone deletes the oldest kept record as well: no audit.pruned record explains it.
    const db = new Database(file);
    db.prepare('DELETE FROM records WHERE seq = 6').run();
    db.close();
    const again = await openSqliteStore(file, { readOnly: true });
    const [bad] = await verifyStore(again, {});
    expect(bad.report.ok).toBe(false);
    expect(bad.report.problems.map((p) => p.kind)).toContain('seq-gap');
    await again.close();
  });
});

describe('streaming', () => {
  it('sends every durable record to a webhook and to an OTLP/HTTP logs endpoint', async () => {
    const got: { path: string; body: unknown }[] = [];
    const server = http.createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        got.push({ path: req.url ?? '', body: JSON.parse(body) });
        res.end('{}');
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const port = (server.address() as net.AddressInfo).port;
    try {
      const sinks = createSinks(
        [
          { kind: 'webhook', url: `http://127.0.0.1:${port}/hook` },
          { kind: 'otlp', url: `http://127.0.0.1:${port}/v1/logs` },
        ],
        silentLogger(),
      );
      const log = await AuditLog.open({ store: await openSqliteStore(':memory:'), instance: 's', onFailure: 'block', log: silentLogger(), sinks });
      await log.writeAhead('statement.begin', { identity: 'alice', session: 'x1', sql: 'SELECT 1' });
      await log.writeAhead('statement.begin', { identity: 'bob', session: 'x2', sql: 'SELECT 2' });
      for (let i = 0; i < 50 && got.length < 2; i++) await new Promise((r) => setTimeout(r, 50));
      await log.close();
      const hooks = got.filter((g) => g.path === '/hook').flatMap((g) => (g.body as { records: { seq: number; data: { identity: string } }[] }).records);
      expect(hooks.map((r) => r.data.identity)).toEqual(['alice', 'bob']);
      const otlp = got.filter((g) => g.path === '/v1/logs').flatMap(
        (g) =>
          (g.body as { resourceLogs: { scopeLogs: { logRecords: { body: { stringValue: string }; attributes: { key: string; value: { stringValue?: string } }[] }[] }[] }[] }).resourceLogs[0]
            .scopeLogs[0].logRecords,
      );
      expect(otlp).toHaveLength(2);
      expect(otlp[0].attributes.find((a) => a.key === 'warden.identity')?.value.stringValue).toBe('alice');
      expect(JSON.parse(otlp[1].body.stringValue).data.sql).toBe('SELECT 2');
    } finally {
      await new Promise((r) => server.close(r));
    }
  });
});
