/**
 * A reload keeps what Warden knows of each running session (in process, real PostgreSQL):
 *
 * - the search_path a session set: after a reload that denies `other.t`, an unqualified `t`
 *   on a session whose search_path is `other` is refused (a policy that forgot the session's
 *   path would resolve `t` to public.t and let it through);
 * - prepared statements: a named statement prepared before the reload still executes after it;
 * - masking added by a reload applies to a running session's next SELECT;
 * - identities: a session of an identity the reload removes ends at its next statement (57P01),
 *   and the removed identity can no longer log in; a refused reload changes nothing;
 * - stopping with a drain (last): a session in an open transaction may finish it (COMMIT), then
 *   it is ended with 57P01; an idle session is ended at once.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { startWarden, type Warden } from '../../src/app.js';
import { silentLogger } from '../../src/log/logger.js';
import { baseYaml, PASSWORDS, startCluster } from '../helpers/warden-env.js';
import type { PgCluster } from '../../src/embedded/pg-cluster.js';

let cluster: PgCluster;
let warden: Warden;
let text = '';

const MASK = `sensitive:
  columns:
    public.people.email: email
  key: 0123456789abcdef0123456789abcdef
rules:
  - { name: mask-people, match: { tables: [public.people] }, action: mask }
`;

function connect(user: keyof typeof PASSWORDS): Promise<pg.Client> {
  const c = new pg.Client({ host: '127.0.0.1', port: warden.port, user, password: PASSWORDS[user], database: 'app' });
  c.on('error', () => undefined);
  return c.connect().then(() => c);
}

beforeAll(async () => {
  cluster = await startCluster();
  await cluster.query(
    `CREATE SCHEMA other AUTHORIZATION warden_svc;
     CREATE TABLE public.t (v text); INSERT INTO public.t VALUES ('public');
     CREATE TABLE other.t (v text); INSERT INTO other.t VALUES ('other');
     CREATE TABLE public.people (email text); INSERT INTO public.people VALUES ('ann@example.com');
     GRANT ALL ON ALL TABLES IN SCHEMA public, other TO warden_svc`,
    'app',
  );
  text = baseYaml(cluster.port);
  warden = await startWarden({ config: parseConfig(text, '/tmp/warden-reload-state.yaml', {}), log: silentLogger(), loadConfig: () => parseConfig(text, '/tmp/warden-reload-state.yaml', {}) });
}, 60_000);
afterAll(async () => {
  await warden?.close();
  await cluster?.stop();
});

describe('a reload keeps each session’s state', () => {
  it('search_path and prepared statements carry over; masking added by the reload applies', async () => {
    const c = await connect('alice');
    try {
      await c.query('SET search_path = other');
      expect((await c.query('SELECT v FROM t')).rows).toEqual([{ v: 'other' }]);
      expect((await c.query({ name: 'pub', text: 'SELECT v FROM public.t' })).rows).toEqual([{ v: 'public' }]);
      expect((await c.query('SELECT email FROM public.people')).rows).toEqual([{ email: 'ann@example.com' }]);

      text = baseYaml(cluster.port, `${MASK}  - { name: no-other-t, match: { tables: [other.t] }, action: deny }\n`);
      const r = await warden.reload({ trigger: 'SIGHUP' });
      expect(r).toMatchObject({ ok: true, restartNeeded: [] });

      await expect(c.query('SELECT v FROM t')).rejects.toMatchObject({ code: '42501', message: expect.stringContaining('no-other-t') });
      // Prepared before the reload: the named statement is only bound and executed now.
      expect((await c.query({ name: 'pub', text: 'SELECT v FROM public.t' })).rows).toEqual([{ v: 'public' }]);
      const masked = (await c.query('SELECT email FROM public.people')).rows[0].email as string;
      expect(masked).not.toBe('ann@example.com');
      expect(masked).toMatch(/@/);
    } finally {
      await c.end().catch(() => undefined);
    }
  });

  it('a removed identity’s session ends at its next statement and it cannot log in; a refused reload changes nothing', async () => {
    const agent = await connect('agent');
    const bob = await connect('bob');
    try {
      expect((await agent.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
      const before = text;
      text = 'version: 1\nnot valid: [';
      const refused = await warden.reload({ trigger: 'SIGHUP' });
      expect(refused.ok).toBe(false);
      expect(warden.reloadState).toMatchObject({ ok: false, error: refused.error });
      expect((await agent.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);

      text = before.replace(/  - name: agent\n    kind: agent\n    password: [^\n]+\n/, '');
      expect(text).not.toContain('name: agent');
      expect((await warden.reload({ trigger: 'SIGHUP' })).ok).toBe(true);
      expect(warden.reloadState.ok).toBe(true);
      await expect(agent.query('SELECT 1')).rejects.toMatchObject({ code: '57P01', message: expect.stringContaining('identity "agent" is no longer in the configuration') });
      await expect(connect('agent')).rejects.toMatchObject({ code: '28P01' });
      // Unchanged identities carry on.
      expect((await bob.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
    } finally {
      await agent.end().catch(() => undefined);
      await bob.end().catch(() => undefined);
    }
  });
});

describe('close with a drain (as on SIGTERM)', () => {
  it('lets an open transaction commit, then ends its session; idle sessions end at once', async () => {
    const tx = await connect('alice');
    const idle = await connect('bob');
    const idleEnded = new Promise<Error & { code?: string }>((resolve) => idle.on('error', resolve));
    const txEnded = new Promise<Error & { code?: string }>((resolve) => tx.on('error', resolve));
    await tx.query('BEGIN');
    await tx.query("INSERT INTO public.t VALUES ('in-tx')");
    const closed = warden.close({ drainTimeoutMs: 10_000 });
    expect(await idleEnded).toMatchObject({ code: '57P01' });
    await tx.query("INSERT INTO public.t VALUES ('still-in-tx')");
    await tx.query('COMMIT');
    expect(await txEnded).toMatchObject({ code: '57P01' });
    await closed;
    const rows = await cluster.query("SELECT count(*)::int AS n FROM public.t WHERE v LIKE '%in-tx'", 'app');
    expect(rows.rows[0].n).toBe(2);
  });
});
