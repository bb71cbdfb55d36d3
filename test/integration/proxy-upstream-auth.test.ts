/**
 * Warden authenticating to its upstream with the service credentials of each
 * database, by every method PostgreSQL may ask for: SCRAM-SHA-256, md5,
 * cleartext (`password`) and trust. Failures reach the client as 08006 naming
 * the database, never with the upstream's credentials or role.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { startWarden, type Warden } from '../../src/app.js';
import { parseConfig } from '../../src/config/load.js';
import { startPgCluster, type PgCluster } from '../../src/embedded/pg-cluster.js';
import { silentLogger, createLogger } from '../../src/log/logger.js';
import { runPsql } from '../helpers/psql.js';
import { PASSWORDS, SVC_PASSWORD } from '../helpers/warden-env.js';

const MD5_PASSWORD = 'md5-Secret-7c1d';
const PLAIN_PASSWORD = 'plain-Secret-2b9a';
const WRONG_PASSWORD = 'Wrong-Secret-55e0';
/** Needs percent-encoding in the URL, and SASLprep (non-ASCII) in SCRAM. */
const SPECIAL_PASSWORD = 'p@ss:w/rd#%?ü ß';

const log = process.env.WARDEN_TEST_LOG ? createLogger('debug') : silentLogger();
let cluster: PgCluster;
let warden: Warden;

beforeAll(async () => {
  cluster = await startPgCluster({ hba: 'mixed' });
  // One session: the md5 role must be created while password_encryption is md5.
  const admin = new pg.Client({ host: cluster.host, port: cluster.port, user: 'postgres', password: cluster.superPassword, database: 'postgres' });
  await admin.connect();
  try {
    await admin.query(`CREATE ROLE warden_svc LOGIN PASSWORD '${SVC_PASSWORD}'`);
    await admin.query(`CREATE ROLE scram_special LOGIN PASSWORD '${SPECIAL_PASSWORD.replace(/'/g, "''")}'`);
    await admin.query(`CREATE ROLE plain_user LOGIN PASSWORD '${PLAIN_PASSWORD}'`);
    await admin.query('CREATE ROLE trust_user LOGIN');
    await admin.query(`SET password_encryption = 'md5'`);
    await admin.query(`CREATE ROLE md5_user LOGIN PASSWORD '${MD5_PASSWORD}'`);
    await admin.query('RESET password_encryption');
    await admin.query('CREATE DATABASE app OWNER warden_svc');
  } finally {
    await admin.end();
  }

  const url = (user: string, password?: string) =>
    `postgres://${user}${password === undefined ? '' : ':' + encodeURIComponent(password)}@127.0.0.1:${cluster.port}/app`;
  const yaml = `version: 1
listen: { host: 127.0.0.1, port: 0 }
databases:
  via_scram: { upstream: "${url('warden_svc', SVC_PASSWORD)}" }
  via_special: { upstream: "${url('scram_special', SPECIAL_PASSWORD)}" }
  via_md5: { upstream: "${url('md5_user', MD5_PASSWORD)}" }
  via_plain: { upstream: "${url('plain_user', PLAIN_PASSWORD)}" }
  via_trust: { upstream: "${url('trust_user')}" }
  bad_scram: { upstream: "${url('warden_svc', WRONG_PASSWORD)}" }
  bad_md5: { upstream: "${url('md5_user', WRONG_PASSWORD)}" }
  bad_plain: { upstream: "${url('plain_user', WRONG_PASSWORD)}" }
  plain_without_password: { upstream: "${url('plain_user')}" }
  no_such_role: { upstream: "${url('ghost_user', WRONG_PASSWORD)}" }
identities:
  - name: alice
    password: ${PASSWORDS.alice}
  - name: bob
    kind: service
    password: ${PASSWORDS.bob}
`;
  warden = await startWarden({ config: parseConfig(yaml, '/tmp/warden-upstream-auth-test.yaml', {}), log });
});

afterAll(async () => {
  await warden?.close();
  await cluster?.stop();
});

const client = (database: string, identity: keyof typeof PASSWORDS = 'alice') =>
  new pg.Client({ host: '127.0.0.1', port: warden.port, user: identity, password: PASSWORDS[identity], database });

async function whoAmI(database: string): Promise<{ current_user: string; session_user: string }> {
  const c = client(database);
  await c.connect();
  try {
    return (await c.query('select current_user, session_user')).rows[0];
  } finally {
    await c.end();
  }
}

async function refusal(database: string): Promise<pg.DatabaseError> {
  const c = client(database);
  try {
    await c.connect();
  } catch (err) {
    return err as pg.DatabaseError;
  }
  await c.end();
  throw new Error(`logging in to ${database} through Warden succeeded`);
}

/** Every field the client got, message included (it is not enumerable on Error). */
const everything = (e: pg.DatabaseError): string => JSON.stringify({ ...e, message: e.message });

describe('the cluster is set up as intended', () => {
  it('md5_user really has an md5 password (so the md5 hba line is not upgraded to SCRAM)', async () => {
    const r = await cluster.query("select rolname, left(rolpassword, 3) as kind from pg_authid where rolname in ('md5_user', 'plain_user', 'warden_svc') order by rolname");
    expect(r.rows).toEqual([
      { rolname: 'md5_user', kind: 'md5' },
      { rolname: 'plain_user', kind: 'SCR' },
      { rolname: 'warden_svc', kind: 'SCR' },
    ]);
  });
});

describe('each upstream method works', () => {
  it.each([
    ['via_scram', 'warden_svc'],
    ['via_special', 'scram_special'],
    ['via_md5', 'md5_user'],
    ['via_plain', 'plain_user'],
    ['via_trust', 'trust_user'],
  ])('%s: the session runs as %s upstream', async (db, role) => {
    expect(await whoAmI(db)).toEqual({ current_user: role, session_user: role });
  });

  it('md5 twice in a row (a fresh salt each time) and concurrently', async () => {
    const results = await Promise.all([whoAmI('via_md5'), whoAmI('via_md5'), whoAmI('via_plain'), whoAmI('via_trust')]);
    expect(results.map((r) => r.current_user)).toEqual(['md5_user', 'md5_user', 'plain_user', 'trust_user']);
  });

  it('psql through md5 works too', async () => {
    const r = await runPsql({ port: warden.port, user: 'bob', password: PASSWORDS.bob, database: 'via_md5', args: ['-At', '-c', 'select current_user'] });
    expect(r.err).toBe('');
    expect(r.out.trim()).toBe('md5_user');
  });

  it('identity and upstream role are independent: two identities, one upstream role', async () => {
    const a = client('via_plain', 'alice');
    const b = client('via_plain', 'bob');
    await a.connect();
    await b.connect();
    try {
      expect((await a.query('select current_user as u')).rows[0].u).toBe('plain_user');
      expect((await b.query('select current_user as u')).rows[0].u).toBe('plain_user');
    } finally {
      await a.end();
      await b.end();
    }
  });
});

describe('upstream authentication failures', () => {
  it.each([
    ['bad_scram', 'warden_svc'],
    ['bad_md5', 'md5_user'],
    ['bad_plain', 'plain_user'],
    ['no_such_role', 'ghost_user'],
  ])('%s: FATAL 08006 naming the database, without password or upstream role', async (db, role) => {
    const e = await refusal(db);
    expect(e.severity).toBe('FATAL');
    expect(e.code).toBe('08006');
    expect(e.message).toContain(`could not connect to database "${db}"`);
    const all = everything(e);
    for (const secret of [WRONG_PASSWORD, SVC_PASSWORD, MD5_PASSWORD, PLAIN_PASSWORD, role, 'postgres://']) {
      expect(all).not.toContain(secret);
    }
    // Not PostgreSQL's own text, which names the upstream role.
    expect(all).not.toContain('password authentication failed');
  });

  it('a database whose config has no password, when the upstream asks for one: 08006', async () => {
    const e = await refusal('plain_without_password');
    expect(e.code).toBe('08006');
    expect(e.message).toContain('could not connect to database "plain_without_password"');
    expect(everything(e)).not.toContain('plain_user');
  });

  it('psql shows the 08006 message', async () => {
    const r = await runPsql({ port: warden.port, user: 'alice', password: PASSWORDS.alice, database: 'bad_md5', args: ['-At', '-c', 'select 1'] });
    expect(r.code).not.toBe(0);
    expect(r.err).toContain('could not connect to database "bad_md5"');
    expect(r.err).not.toContain('md5_user');
    expect(r.err).not.toContain(WRONG_PASSWORD);
  });

  it('failures leave the good databases working', async () => {
    await Promise.all([refusal('bad_scram'), refusal('bad_md5'), refusal('bad_plain')]);
    expect((await whoAmI('via_scram')).current_user).toBe('warden_svc');
  });
});
