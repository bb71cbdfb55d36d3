/**
 * Secrets never reach a record, a log line, an approval request or a webhook: through a real
 * Warden and PostgreSQL, role passwords (plain, E'' strings, dollar quotes, SCRAM verifiers as
 * psql's \password sends them), user mapping and server options, subscription connection
 * strings, dblink connection strings (inline and as bind parameters), URIs with a password, code
 * bodies, multi-statement strings, unparsable texts, refused statements and approval requests are
 * run; then every byte of every file in the audit and state stores' directory (journals, WAL
 * files, whatever the store keeps), every log line and every webhook post is searched for the
 * secrets. None may be found, while the statements themselves are still recorded.
 */
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { baseYaml, direct, PASSWORDS, SVC_PASSWORD, startCluster } from '../helpers/warden-env.js';
import { runPsql } from '../helpers/psql.js';
import type { PgCluster } from '../../src/embedded/pg-cluster.js';
import { parseConfig } from '../../src/config/load.js';
import { startWarden, type Warden } from '../../src/app.js';
import { createLogger } from '../../src/log/logger.js';

/** Every secret sent, as typed and (for escaped forms) as PostgreSQL reads it. */
const SECRETS = [
  'Sx-role-create-1',
  'Sx-role-escaped-2',
  'Sx\\x2drole\\x2descaped\\x2d3',
  'Sx-role-escaped-3',
  'Sx-role-dollar-4',
  'U3gtc2FsdC01', // the SCRAM verifier's salt, stored key and server key
  'U3gtc3RvcmVkLTU=',
  'U3gtc2VydmVyLTU=',
  'Sx-um-create-6',
  'Sx-um-alter-7',
  'Sx-srv-token-8',
  'Sx-sub-9',
  'Sx-dbl-10',
  'Sx-dbl-param-11',
  'Sx-uri-12',
  'Sx-multi-13',
  'Sx-do-14',
  'Sx-unterminated-15',
  'Sx-refused-16',
  'Sx_refused_unparsed_17',
  'Sx-approval-18',
  'Sx-approval-param-19',
  'Sx-setting-20',
  'Sx-fn-body-21',
  'Sx-view-22',
  'Sx-ft-token-23',
  'Sx-echo-24',
];

const hookBodies: string[] = [];
let hook: http.Server;
let hookPort = 0;
let cluster: PgCluster;

beforeAll(async () => {
  hook = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString('utf8')));
    req.on('end', () => {
      hookBodies.push(body);
      res.writeHead(200).end('ok');
    });
  });
  await new Promise<void>((r) => hook.listen(0, '127.0.0.1', r));
  hookPort = (hook.address() as { port: number }).port;
  cluster = await startCluster();
  await direct(cluster, 'CREATE EXTENSION dblink');
  await direct(cluster, 'CREATE EXTENSION postgres_fdw');
  await direct(cluster, 'GRANT USAGE ON FOREIGN DATA WRAPPER postgres_fdw TO warden_svc');
  // A wrapper without a validator takes any option (postgres_fdw refuses unknown ones).
  await direct(cluster, 'CREATE FOREIGN DATA WRAPPER sec_any_fdw');
  await direct(cluster, 'GRANT USAGE ON FOREIGN DATA WRAPPER sec_any_fdw TO warden_svc');
  await cluster.query('ALTER ROLE warden_svc CREATEROLE');
}, 120_000);

afterAll(async () => {
  await cluster?.stop();
  await new Promise((r) => hook?.close(r));
});

function yaml(pgPort: number, dir: string, store: 'sqlite' | 'jsonl'): string {
  return baseYaml(
    pgPort,
    `admin: { host: 127.0.0.1, port: 0 }
state: { store: "sqlite:${dir}/state.db" }
approvals:
  mode: reject
  timeout: 30s
  webhook: http://127.0.0.1:${hookPort}/hook
audit:
  store: ${store}:${dir}/${store === 'sqlite' ? 'audit.db' : 'audit.jsonl'}
  instance: secrets-${store}
rules:
  - name: bob-no-ddl
    match: { identity: [bob], statement: [ddl] }
    action: deny
    reason: bob runs no DDL
  - name: agent-asks
    match: { identity: [agent] }
    action: approve
    reason: agents ask first
    approvers: { groups: [analysts], count: 1 }
`,
  );
}

/** Every file under `dir`, recursively, as raw bytes (latin1, so any byte sequence survives). */
function allBytes(dir: string): { files: string[]; text: string } {
  const files: string[] = [];
  const walk = (d: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) files.push(p);
    }
  };
  walk(dir);
  return { files, text: files.map((f) => fs.readFileSync(f).toString('latin1')).join('\n') };
}

/** Runs a statement through Warden; errors from PostgreSQL or Warden are expected for some. */
async function attempt(c: pg.Client, sql: string, params?: unknown[]): Promise<string> {
  try {
    await c.query(sql, params);
    return 'ok';
  } catch (err) {
    return `${(err as { code?: string }).code ?? ''} ${(err as Error).message}`;
  }
}

describe.each(['sqlite', 'jsonl'] as const)('with the %s audit store', (store) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `warden-secrets-${store}-`));
  const logs: string[] = [];
  let warden: Warden;
  const outcomes: Record<string, string> = {};

  beforeAll(async () => {
    hookBodies.length = 0;
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        logs.push(chunk.toString('utf8'));
        cb();
      },
    });
    const config = parseConfig(yaml(cluster.port, dir, store), path.join(dir, 'warden.yaml'), {});
    warden = await startWarden({ config, log: createLogger('trace', sink) });
    const role = `sec_role_${store}`;
    const server = `sec_srv_${store}`;
    const conn = `host=127.0.0.1 port=${cluster.port} dbname=app user=warden_svc`;

    // psql, as a person would type them (and as psql's \password sends a verifier).
    const psql = (user: 'alice' | 'bob', sql: string) =>
      runPsql({ port: warden.port, user, password: PASSWORDS[user], database: 'app', args: ['-v', 'ON_ERROR_STOP=0', '-c', sql] });
    outcomes.create = (await psql('alice', `CREATE ROLE ${role} LOGIN PASSWORD 'Sx-role-create-1' VALID UNTIL '2031-01-01'`)).err;
    outcomes.verifier = (await psql('alice', `ALTER USER ${role} PASSWORD 'SCRAM-SHA-256$4096:U3gtc2FsdC01$U3gtc3RvcmVkLTU=:U3gtc2VydmVyLTU='`)).err;

    const alice = new pg.Client({ host: '127.0.0.1', port: warden.port, user: 'alice', password: PASSWORDS.alice, database: 'app' });
    await alice.connect();
    outcomes.encrypted = await attempt(alice, `ALTER ROLE ${role} WITH ENCRYPTED PASSWORD 'Sx-role-escaped-2'`);
    outcomes.escaped = await attempt(alice, `alter role "${role}" password E'Sx\\x2drole\\x2descaped\\x2d3'`);
    outcomes.dollar = await attempt(alice, `ALTER ROLE ${role} PASSWORD /* dollar */ $pw$Sx-role-dollar-4$pw$`);
    outcomes.server = await attempt(alice, `CREATE SERVER ${server} FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host '127.0.0.1', dbname 'app')`);
    outcomes.um = await attempt(alice, `CREATE USER MAPPING FOR CURRENT_USER SERVER ${server} OPTIONS (user 'warden_svc', password 'Sx-um-create-6')`);
    outcomes.umAlter = await attempt(alice, `ALTER USER MAPPING FOR CURRENT_USER SERVER ${server} OPTIONS (SET password $$Sx-um-alter-7$$)`);
    outcomes.anyServer = await attempt(alice, `CREATE SERVER sec_any_${store} FOREIGN DATA WRAPPER sec_any_fdw`);
    outcomes.serverToken = await attempt(alice, `ALTER SERVER sec_any_${store} OPTIONS (ADD access_token 'Sx-srv-token-8')`);
    outcomes.sub = await attempt(alice, `CREATE SUBSCRIPTION sec_sub_${store} CONNECTION '${conn} password=Sx-sub-9' PUBLICATION p WITH (connect = false)`);
    outcomes.dblink = await attempt(alice, `SELECT dblink_connect('c_${store}', '${conn} password=Sx-dbl-10')`);
    outcomes.dblinkParam = await attempt(alice, 'SELECT dblink_connect($1)', [`${conn} password=Sx-dbl-param-11`]);
    outcomes.uri = await attempt(alice, "SELECT 'postgresql://warden_svc:Sx-uri-12@127.0.0.1/app' AS target");
    outcomes.multi = await attempt(alice, `SELECT 1; ALTER ROLE ${role} PASSWORD 'Sx-multi-13'; SELECT 2`);
    outcomes.doBlock = await attempt(alice, `DO $$ BEGIN EXECUTE 'ALTER ROLE ${role} PASSWORD ''Sx-do-14'''; END $$`);
    outcomes.setting = await attempt(alice, "SELECT set_config('app.jwt_secret', 'Sx-setting-20', false)");
    outcomes.unterminated = await attempt(alice, `ALTER ROLE ${role} PASSWORD 'Sx-unterminated-15`);
    // PostgreSQL quotes the value it cannot read back in its error (statement.end's error).
    outcomes.echo = await attempt(alice, "SELECT 'postgresql://warden_svc:Sx-echo-24@127.0.0.1/app'::int");
    // DDL whose catalog definitions (schema.change) hold the secret: a body, a view, a foreign table's options.
    outcomes.fn = await attempt(
      alice,
      `CREATE FUNCTION sec_fn_${store}() RETURNS text LANGUAGE sql AS $f$ SELECT dblink_connect('sec_fc', '${conn} password=Sx-fn-body-21') $f$`,
    );
    outcomes.view = await attempt(alice, `CREATE VIEW sec_view_${store} AS SELECT 'postgresql://warden_svc:Sx-view-22@127.0.0.1/app'::text AS target`);
    outcomes.ft = await attempt(alice, `CREATE FOREIGN TABLE sec_ft_${store} (a int) SERVER sec_any_${store} OPTIONS (table_name 't', access_token 'Sx-ft-token-23')`);
    await alice.end();

    const bob = new pg.Client({ host: '127.0.0.1', port: warden.port, user: 'bob', password: PASSWORDS.bob, database: 'app' });
    await bob.connect();
    outcomes.refused = await attempt(bob, `ALTER ROLE ${role} PASSWORD 'Sx-refused-16'`);
    outcomes.refusedUnparsed = await attempt(bob, `ALTER ROLE ${role} WITH PASSWORD Sx_refused_unparsed_17`);
    await bob.end();

    const agent = new pg.Client({ host: '127.0.0.1', port: warden.port, user: 'agent', password: PASSWORDS.agent, database: 'app' });
    await agent.connect();
    outcomes.approval = await attempt(agent, `ALTER ROLE ${role} PASSWORD 'Sx-approval-18'`);
    outcomes.approvalParam = await attempt(agent, 'SELECT dblink_connect($1)', [`${conn} password=Sx-approval-param-19`]);
    await agent.end();

    // Both approval requests are posted to the webhook.
    for (let t0 = Date.now(); hookBodies.length < 2 && Date.now() - t0 < 15_000; ) await new Promise((r) => setTimeout(r, 50));
    await warden.close();
    if (process.env.KEEP_AUDIT) console.log('AUDITDIR', dir);
  }, 120_000);

  afterAll(() => {
    if (!process.env.KEEP_AUDIT) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('the statements ran, failed upstream or were refused as expected', () => {
    expect(outcomes.create).toBe('');
    expect(outcomes.verifier).toBe('');
    expect(outcomes.encrypted).toBe('ok');
    expect(outcomes.escaped).toBe('ok');
    expect(outcomes.dollar).toBe('ok');
    expect(outcomes.um).toBe('ok');
    expect(outcomes.umAlter).toBe('ok');
    expect(outcomes.multi).toBe('ok');
    expect(outcomes.doBlock).toBe('ok');
    expect([outcomes.anyServer, outcomes.serverToken, outcomes.fn, outcomes.view, outcomes.ft]).toEqual(['ok', 'ok', 'ok', 'ok', 'ok']);
    expect(outcomes.unterminated).toMatch(/^42601 unterminated quoted string/);
    expect(outcomes.echo).toMatch(/^22P02 invalid input syntax for type integer: ".*Sx-echo-24/);
    expect(outcomes.refused).toMatch(/^42501 .*bob-no-ddl/);
    expect(outcomes.refusedUnparsed).toMatch(/^42601|^42501/);
    expect(outcomes.approval).toMatch(/^42501 .*requires approval/);
    expect(outcomes.approvalParam).toMatch(/^42501 .*requires approval/);
  });

  it('no secret is in any file of the audit and state stores, the logs or the webhook posts', () => {
    const { files, text } = allBytes(dir);
    expect(files.some((f) => /audit/.test(path.basename(f)))).toBe(true);
    expect(files.some((f) => /state/.test(path.basename(f)))).toBe(true);
    expect(hookBodies.length).toBeGreaterThanOrEqual(2);
    expect(logs.length).toBeGreaterThan(0);
    const where: string[] = [];
    for (const s of SECRETS) {
      if (text.includes(s)) where.push(`${s} in ${files.filter((f) => fs.readFileSync(f).toString('latin1').includes(s)).join(', ')}`);
      if (logs.some((l) => l.includes(s))) where.push(`${s} in the log`);
      if (hookBodies.some((b) => b.includes(s))) where.push(`${s} in a webhook post`);
    }
    expect(where).toEqual([]);
  });

  it('the statements are still recorded, with their secrets redacted', () => {
    const { text } = allBytes(dir);
    const role = `sec_role_${store}`;
    for (const shown of [
      `CREATE ROLE ${role} LOGIN PASSWORD '<redacted>' VALID UNTIL '2031-01-01'`,
      `ALTER USER ${role} PASSWORD '<redacted>'`,
      `ALTER ROLE ${role} PASSWORD /* dollar */ '<redacted>'`,
      `OPTIONS (user 'warden_svc', password '<redacted>')`,
      `CONNECTION '<redacted>' PUBLICATION p`,
      `SELECT dblink_connect('<redacted>', '<redacted>')`,
      'SELECT dblink_connect($1)',
      `SELECT 1; ALTER ROLE ${role} PASSWORD '<redacted>'; SELECT 2`,
      `EXECUTE 'ALTER ROLE ${role} PASSWORD ''<redacted>'''`,
      '<statement withheld: could not be parsed and may carry a secret',
      'invalid input syntax for type integer: <redacted>',
      // schema.change: the definitions read from the catalog, redacted the same way.
      "$function$ SELECT dblink_connect('<redacted>', '<redacted>') $function$",
      'access_token=<redacted>',
    ]) {
      expect(text, shown).toContain(shown);
    }
    // Bind parameters of a dblink connection are masked; the webhook shows the redacted request.
    expect(text).toContain('<masked>');
    const posted = hookBodies.map((b) => JSON.parse(b) as { request: { sql: string; params?: unknown[] } });
    expect(posted.map((p) => p.request.sql)).toContain(`ALTER ROLE ${role} PASSWORD '<redacted>'`);
    expect(posted.find((p) => p.request.sql === 'SELECT dblink_connect($1)')?.request.params).toEqual(['<masked>']);
    // The upstream's service password was in none of these statements; still never recorded.
    expect(text).not.toContain(SVC_PASSWORD);
  });
});
