import { existsSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, startPgCluster, type PgCluster } from '../../src/embedded/pg-cluster.js';

async function loginAs(cluster: PgCluster, user: string, password?: string): Promise<string> {
  const client = new pg.Client({ host: cluster.host, port: cluster.port, user, password, database: 'postgres' });
  await client.connect();
  try {
    const r = await client.query<{ u: string }>('SELECT current_user AS u');
    return r.rows[0].u;
  } finally {
    await client.end();
  }
}

function portAccepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
  });
}

describe('embedded PostgreSQL cluster', () => {
  let cluster: PgCluster;

  beforeAll(async () => {
    cluster = await startPgCluster({ hba: 'mixed' });
  });

  afterAll(async () => {
    await cluster?.stop();
  });

  it('freePort returns a bindable port', async () => {
    const port = await freePort();
    expect(port).toBeGreaterThan(0);
    expect(port).toBeLessThan(65536);
  });

  it('accepts the superuser over TCP with scram and reports its settings', async () => {
    expect(cluster.host).toBe('127.0.0.1');
    expect(cluster.superuser).toBe('postgres');
    expect(existsSync(cluster.dataDir)).toBe(true);
    expect(existsSync(path.join(cluster.binDir, 'pg_ctl'))).toBe(true);

    const client = new pg.Client({ connectionString: cluster.url() });
    await client.connect();
    try {
      const enc = await client.query('SHOW password_encryption');
      expect(enc.rows[0].password_encryption).toBe('scram-sha-256');
      const fsync = await client.query('SHOW fsync');
      expect(fsync.rows[0].fsync).toBe('off');
      const maxConn = await client.query('SHOW max_connections');
      expect(maxConn.rows[0].max_connections).toBe('200');
    } finally {
      await client.end();
    }

    // Wrong password is refused.
    await expect(loginAs(cluster, 'postgres', 'not-the-password')).rejects.toThrow(/password authentication failed/);

    // query() helper and url() shape
    const r = await cluster.query('SELECT current_database() AS db, current_user AS u');
    expect(r.rows[0]).toEqual({ db: 'postgres', u: 'postgres' });
    expect(cluster.url('app', 'alice', 'p@ss')).toBe(`postgres://alice:p%40ss@127.0.0.1:${cluster.port}/app`);
    expect(cluster.url('app', 'alice')).toBe(`postgres://alice@127.0.0.1:${cluster.port}/app`);
  });

  it('mixed hba: md5, cleartext password, trust and scram users', async () => {
    // md5 only works when the password is *stored* as md5.
    await cluster.query(`
      SET password_encryption = 'md5';
      CREATE ROLE md5_user LOGIN PASSWORD 'md5-secret';
      RESET password_encryption;
      CREATE ROLE plain_user LOGIN PASSWORD 'plain-secret';
      CREATE ROLE trust_user LOGIN;
      CREATE ROLE scram_user LOGIN PASSWORD 'scram-secret';
    `);
    const stored = await cluster.query(
      `SELECT rolname, split_part(rolpassword, '-', 1) LIKE 'SCRAM%' AS scram, rolpassword LIKE 'md5%' AS md5
         FROM pg_authid WHERE rolname IN ('md5_user', 'scram_user') ORDER BY rolname`,
    );
    expect(stored.rows).toEqual([
      { rolname: 'md5_user', scram: false, md5: true },
      { rolname: 'scram_user', scram: true, md5: false },
    ]);

    expect(await loginAs(cluster, 'md5_user', 'md5-secret')).toBe('md5_user');
    expect(await loginAs(cluster, 'plain_user', 'plain-secret')).toBe('plain_user');
    expect(await loginAs(cluster, 'trust_user')).toBe('trust_user');
    expect(await loginAs(cluster, 'scram_user', 'scram-secret')).toBe('scram_user');

    await expect(loginAs(cluster, 'md5_user', 'wrong')).rejects.toThrow(/password authentication failed/);
    await expect(loginAs(cluster, 'plain_user', 'wrong')).rejects.toThrow(/password authentication failed/);
    await expect(loginAs(cluster, 'scram_user', 'wrong')).rejects.toThrow(/password authentication failed/);

    // The methods really differ: only the users with their own hba line avoid SCRAM.
    const methods = await cluster.query(
      `SELECT user_name[1] AS u, auth_method FROM pg_hba_file_rules WHERE type = 'host' AND user_name[1] <> 'all' ORDER BY 1`,
    );
    expect(methods.rows).toEqual([
      { u: 'md5_user', auth_method: 'md5' },
      { u: 'plain_user', auth_method: 'password' },
      { u: 'trust_user', auth_method: 'trust' },
    ]);
  });

  it('stop() removes the temp dir, stops listening, and is idempotent', async () => {
    const other = await startPgCluster({ logStatements: true, settings: { work_mem: '8MB' } });
    const tmpDir = path.dirname(other.dataDir);
    const r = await other.query('SHOW work_mem');
    expect(r.rows[0].work_mem).toBe('8MB');
    expect(await portAccepts(other.port)).toBe(true);

    await Promise.all([other.stop(), other.stop()]);
    await other.stop();
    expect(existsSync(tmpDir)).toBe(false);
    expect(await portAccepts(other.port)).toBe(false);
  });
});
