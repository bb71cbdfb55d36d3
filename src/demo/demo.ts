/**
 * `warden start` with no configuration: a guided demo on an embedded
 * upstream — a private PostgreSQL cluster in a temp dir when PostgreSQL's
 * binaries are found, otherwise PGlite in memory (one session at a time) —
 * with a small dataset and the product spec's rules, so a newcomer sees Warden
 * govern a real database without writing a config. Everything it starts is
 * stopped, and its temp files removed, when it stops — except its audit log, in a private
 * directory of its own named in the banner, kept for `warden audit verify`.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { startPgCluster, findPgBinDir, freePort } from '../embedded/pg-cluster.js';
import { startPglite } from '../embedded/pglite.js';
import { parseConfig } from '../config/load.js';
import { startWarden, type Warden } from '../app.js';
import type { Logger } from '../log/logger.js';
import { demoDatasetSql } from './dataset.js';

export interface Demo {
  readonly warden: Warden;
  readonly upstream: DemoUpstream;
  readonly banner: string;
  stop(): Promise<void>;
}

/** The database the demo governs. */
export interface DemoUpstream {
  readonly kind: 'postgresql' | 'pglite';
  /** Where Warden connects, with the service credentials. */
  readonly url: string;
  /** The banner's line about it. */
  readonly description: string;
  stop(): Promise<void>;
}

/** Which embedded upstream: WARDEN_DEMO_UPSTREAM (postgresql | pglite), else PostgreSQL when its binaries are found. */
async function chooseUpstream(): Promise<'postgresql' | 'pglite'> {
  const asked = process.env.WARDEN_DEMO_UPSTREAM;
  if (asked === 'postgresql' || asked === 'pglite') return asked;
  if (asked) throw new Error(`WARDEN_DEMO_UPSTREAM must be postgresql or pglite, not ${JSON.stringify(asked)}`);
  try {
    await findPgBinDir();
    return 'postgresql';
  } catch {
    return 'pglite';
  }
}

/** Start the embedded upstream and load the demo dataset into it. */
async function startUpstream(kind: 'postgresql' | 'pglite', log: Logger): Promise<DemoUpstream> {
  if (kind === 'pglite') {
    const p = await startPglite({ onWarning: (message) => log.warn({ upstream: 'pglite' }, message) });
    try {
      await loadDataset(p.url());
    } catch (err) {
      await p.stop();
      throw err;
    }
    return {
      kind,
      url: p.url(),
      description:
        `PGlite ${p.version} (PostgreSQL in WebAssembly, in memory) 127.0.0.1:${p.port}\n` +
        '                                PGlite serves one session at a time: a session waits while another runs\n' +
        '                                a statement or has a transaction open (PostgreSQL binaries were not found)',
      stop: () => p.stop(),
    };
  }
  const cluster = await startPgCluster();
  try {
    const svcPassword = pw();
    await cluster.query(`CREATE ROLE warden_svc LOGIN PASSWORD '${svcPassword}'`);
    await cluster.query('CREATE DATABASE app OWNER warden_svc');
    const url = cluster.url('app', 'warden_svc', svcPassword);
    await loadDataset(url);
    const version = cluster.binDir.match(/postgresql\/(\d+)/)?.[1] ?? '';
    return {
      kind,
      url,
      description: `PostgreSQL ${version} (private cluster) 127.0.0.1:${cluster.port}, data in ${cluster.dataDir} (removed on exit)`,
      stop: () => cluster.stop(),
    };
  } catch (err) {
    await cluster.stop();
    throw err;
  }
}

async function loadDataset(url: string): Promise<void> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    await c.query(demoDatasetSql());
  } finally {
    await c.end();
  }
}

const pw = (): string => crypto.randomBytes(9).toString('base64url');

export function demoConfigYaml(o: {
  /** The upstream, with the service credentials. */
  upstreamUrl: string;
  port: number;
  adminPort: number;
  passwords: Record<'alice' | 'dana' | 'trainer', string>;
  /** Where the audit log is kept (sqlite), and its checkpoint signing key. */
  auditDb: string;
  signingKey: string;
  maskKey: string;
  stateDb: string;
}): string {
  return `version: 1
listen: { host: 127.0.0.1, port: ${o.port} }
admin: { host: 127.0.0.1, port: ${o.adminPort}, auditors: [dba] }
databases:
  app:
    upstream: ${o.upstreamUrl}
    environment: demo
identities:
  - { name: alice, kind: human, groups: [analysts], password: "${o.passwords.alice}" }
  - { name: dana, kind: human, groups: [dba], password: "${o.passwords.dana}" }
  - { name: trainer, kind: agent, groups: [ml-pipelines], password: "${o.passwords.trainer}" }
sensitive:
  columns:
    public.customers.email: email
    public.customers.full_name: name
    public.customers.phone: phone
    public.customers.ssn: ssn
    "billing.*.card_number": credit_card
  detect: [email, credit_card, ssn]
  maskers:
    ssn: partial
    credit_card: partial
  key: "${o.maskKey}"
state:
  store: "sqlite:${o.stateDb}"
approvals:
  mode: hold
  timeout: 10m
audit:
  store: "sqlite:${o.auditDb}"
  instance: demo
  signing_key: "${o.signingKey}"
  checkpoint_every: 100
rules:
  - name: no-destructive-ddl
    match: { statement: [drop, truncate] }
    action: deny
    reason: Destructive DDL is not run through Warden
  - name: agents-read-only
    match: { kind: agent, statement: [write, ddl] }
    action: deny
  - name: billing-writes-need-approval
    match: { statement: [write], tables: ["billing.*"] }
    action: approve
    approvers: { groups: [dba], count: 1 }
  - name: mask-pii-except-dba
    match: { not: { groups: [dba] } }
    action: mask
default: allow
`;
}

/**
 * How the banner's commands run the CLI, pasted into a shell: `node bin/warden.js` from the
 * project's directory (where `npm start` runs), else with the script's absolute path.
 */
function cliCommand(): string {
  const root = path.resolve(import.meta.dirname, '../..');
  const bin = path.join(root, 'bin', 'warden.js');
  if (path.resolve(process.cwd()) === root) return 'node bin/warden.js';
  return `node ${/^[\w./-]+$/.test(bin) ? bin : `'${bin.replace(/'/g, "'\\''")}'`}`;
}

async function portOr(preferred: number): Promise<number> {
  const free = await freePort();
  const ok = await new Promise<boolean>((resolve) => {
    import('node:net').then(({ default: net }) => {
      const s = net.createServer();
      s.once('error', () => resolve(false));
      s.listen(preferred, '127.0.0.1', () => s.close(() => resolve(true)));
    });
  });
  return ok ? preferred : free;
}

export async function startDemo(log: Logger, o: { port?: number; adminPort?: number } = {}): Promise<Demo> {
  const upstream = await startUpstream(await chooseUpstream(), log);
  // The demo's own files (its config, the approvals state), removed on exit.
  const demoDir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-demo-'));
  let auditDir: string | undefined;
  const cleanup = async (): Promise<void> => {
    await upstream.stop();
    fs.rmSync(demoDir, { recursive: true, force: true });
  };
  try {
    const passwords = { alice: pw(), dana: pw(), trainer: pw() };
    const port = o.port ?? (await portOr(6432));
    const adminPort = o.adminPort ?? (await portOr(7070));
    // The audit log outlives the demo (named in the banner, for `audit verify` afterwards): a
    // private directory of its own per run (mkdtemp: unique, 0700, made by us), so demos side
    // by side never share a chain and nobody else can have made it first. Its checkpoints are
    // signed with a key made for this run; the public key stays beside the log.
    auditDir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-demo-audit-'));
    fs.chmodSync(auditDir, 0o700);
    const auditDb = path.join(auditDir, 'audit.db');
    const signingKey = path.join(auditDir, 'signing.pem');
    const publicKey = path.join(auditDir, 'signing.pub.pem');
    const keys = crypto.generateKeyPairSync('ed25519');
    fs.writeFileSync(signingKey, keys.privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600, flag: 'wx' });
    fs.writeFileSync(publicKey, keys.publicKey.export({ type: 'spki', format: 'pem' }), { mode: 0o644, flag: 'wx' });
    const configFile = path.join(demoDir, 'warden-demo.yaml');
    const stateDb = path.join(demoDir, 'warden-state.db');
    const yaml = demoConfigYaml({ upstreamUrl: upstream.url, port, adminPort, passwords, auditDb, signingKey, maskKey: pw() + pw(), stateDb });
    fs.writeFileSync(configFile, yaml, { mode: 0o600 });
    const config = parseConfig(yaml, configFile, {});
    const warden = await startWarden({ config, log });
    const cli = cliCommand();
    const psql = (who: keyof typeof passwords): string =>
      `PGPASSWORD=${passwords[who]} psql "host=127.0.0.1 port=${warden.port} user=${who} dbname=app"`;
    const banner = `
Warden demo — an embedded ${upstream.kind === 'pglite' ? 'PGlite' : 'PostgreSQL'} with a small dataset, governed by Warden.

  Warden (PostgreSQL protocol)  127.0.0.1:${warden.port}
  Admin (API, health, metrics)  http://127.0.0.1:${warden.admin?.port ?? adminPort}/metrics
  Upstream                      ${upstream.description}
  Demo config and state         ${demoDir} (removed on exit)

Connect as each identity (passwords are random for this run):
  analyst:  ${psql('alice')}
  DBA:      ${psql('dana')}
  AI agent: ${psql('trainer')}

A short tour:
  1. As the agent:   SELECT * FROM customers;      -- PII comes back masked (rule mask-pii-except-dba):
                                                     realistic fakes, the same fake for the same value
                     SELECT id FROM customers WHERE email LIKE 'a%';  -- refused: a filter on a masked
                                                     column would reveal the real values
                     DROP TABLE orders;             -- denied by no-destructive-ddl (42501)
                     INSERT INTO orders (item) VALUES ('x');  -- denied by agents-read-only
  2. As the analyst: UPDATE billing.invoices SET status = 'paid' WHERE id = 1;
                     -- waits on the wire for a DBA's approval (rule billing-writes-need-approval);
                        psql prints a NOTICE at once with the request id and the command that approves it.
     In a second terminal, the DBA looks and approves:
       WARDEN_PASSWORD=${passwords.dana} ${cli} approvals list --config ${configFile} --as dana
       WARDEN_PASSWORD=${passwords.dana} ${cli} approvals approve <id> --config ${configFile} --as dana --reason "month-end close"
                     -- the analyst's UPDATE then runs and returns UPDATE 1
     As the DBA:     SELECT full_name, email, ssn FROM customers LIMIT 3;  -- the real values
  3. As anyone:      SET ROLE postgres;              -- denied: a client cannot change who it is
                     SELECT current_setting('warden.identity');  -- who the database sees
  4. The audit log: every session, statement and refusal above, hash-chained and signed:
     ${cli} audit tail --store sqlite:${auditDb}
     ${cli} audit verify --store sqlite:${auditDb} --public-key ${publicKey}
  Dry run a statement without connecting:
     ${cli} policy explain --config ${configFile} --as trainer "DELETE FROM orders"

The audit log is kept after the demo stops, in ${auditDir} (private to you; remove it when done):
  the log ${auditDb}, this run's checkpoint signing key and its public key ${publicKey}.
  The tail and verify commands above work then too.

Press Ctrl-C to stop; the embedded ${upstream.kind === 'pglite' ? 'PGlite and its data are' : 'cluster and its data are'} removed.
`;
    return {
      warden,
      upstream,
      banner,
      stop: async () => {
        await warden.close();
        await cleanup();
      },
    };
  } catch (err) {
    await cleanup();
    // A demo that did not start keeps no audit log.
    if (auditDir) fs.rmSync(auditDir, { recursive: true, force: true });
    throw err;
  }
}
