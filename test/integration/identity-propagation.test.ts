/**
 * Identity propagation: the upstream session carries warden.identity/kind/groups,
 * so Row Level Security can show each identity only its rows, and the client
 * cannot change who it is.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { baseYaml, startCluster, startEnv, type TestEnv } from '../helpers/warden-env.js';
import { prefixedApplicationName } from '../../src/proxy/connection/propagation.js';

let env: TestEnv;

beforeAll(async () => {
  const cluster = await startCluster();
  await cluster.query('CREATE ROLE agent_ro NOLOGIN; GRANT agent_ro TO warden_svc;', 'app');
  // The agent's sessions run as agent_ro upstream (identities[].role).
  env = await startEnv({ cluster, yaml: (p) => baseYaml(p).replace('  - name: agent\n    kind: agent\n', '  - name: agent\n    kind: agent\n    role: agent_ro\n') });
  // The table belongs to the superuser; warden_svc is subject to RLS (not the owner, not BYPASSRLS).
  await env.cluster.query(
    `create table notes (owner text not null, body text);
     insert into notes values ('alice', 'alice note 1'), ('alice', 'alice note 2'), ('bob', 'bob note');
     alter table notes enable row level security;
     create policy own_rows on notes using (owner = current_setting('warden.identity', true));
     grant select, insert on notes to warden_svc;`,
    'app',
  );
});

afterAll(async () => {
  const cluster = env?.cluster;
  await env?.stop();
  await cluster?.stop();
});

describe('per-identity upstream role', () => {
  it('the agent runs as its role, which it cannot leave; others run as the service role', async () => {
    const agent = await env.connect('agent');
    try {
      expect((await agent.query('SELECT current_user AS u, session_user AS s')).rows[0]).toEqual({ u: 'agent_ro', s: 'warden_svc' });
      await expect(agent.query('RESET ROLE')).rejects.toMatchObject({ code: '42501' });
      await expect(agent.query('SET ROLE warden_svc')).rejects.toMatchObject({ code: '42501' });
      await expect(agent.query("SELECT set_config('role', 'warden_svc', false)")).rejects.toMatchObject({ code: '42501' });
      expect((await agent.query('SELECT current_user AS u')).rows[0].u).toBe('agent_ro');
    } finally {
      await agent.end();
    }
    const alice = await env.connect('alice');
    try {
      expect((await alice.query('SELECT current_user AS u')).rows[0].u).toBe('warden_svc');
    } finally {
      await alice.end();
    }
  });
});

describe('upstream session settings', () => {
  it('carry the identity, kind and groups; application_name is prefixed', async () => {
    const c = new pg.Client({ ...env.client('alice'), application_name: 'report-job' });
    await c.connect();
    try {
      const r = await c.query(
        "select current_setting('warden.identity') as id, current_setting('warden.kind') as kind, current_setting('warden.groups') as groups, current_setting('application_name') as app",
      );
      expect(r.rows[0]).toEqual({ id: 'alice', kind: 'human', groups: 'analysts', app: 'warden:alice:report-job' });
      const act = await env.cluster.query("select count(*)::int as n from pg_stat_activity where application_name = 'warden:alice:report-job'", 'app');
      expect(act.rows[0].n).toBe(1);
    } finally {
      await c.end();
    }
  });

  it('a client cannot pose as another identity through startup options', async () => {
    const c = new pg.Client({ ...env.client('bob'), options: '-c warden.identity=alice' });
    await c.connect();
    try {
      expect((await c.query("select current_setting('warden.identity') as id")).rows[0].id).toBe('bob');
    } finally {
      await c.end();
    }
  });

  it('application_name is cut to what PostgreSQL keeps', () => {
    expect(Buffer.byteLength(prefixedApplicationName('alice', 'x'.repeat(100)))).toBeLessThanOrEqual(63);
  });
});

describe('Row Level Security through Warden', () => {
  it('each identity sees only its own rows', async () => {
    const a = await env.connect('alice');
    const b = await env.connect('bob');
    try {
      expect((await a.query('select body from notes order by body')).rows.map((r) => r.body)).toEqual(['alice note 1', 'alice note 2']);
      expect((await b.query('select body from notes')).rows.map((r) => r.body)).toEqual(['bob note']);
    } finally {
      await a.end();
      await b.end();
    }
  });

  it('SET warden.identity, set_config and RESET ALL cannot change it', async () => {
    const b = await env.connect('bob');
    try {
      for (const s of ["SET warden.identity = 'alice'", "SELECT set_config('warden.identity', 'alice', false)", 'RESET ALL', 'RESET warden.identity', 'DISCARD ALL']) {
        await expect(b.query(s), s).rejects.toMatchObject({ code: '42501' });
      }
      expect((await b.query('select body from notes')).rows.map((r) => r.body)).toEqual(['bob note']);
    } finally {
      await b.end();
    }
  });
});
