/**
 * Test environment: a private PostgreSQL cluster with an `app` database owned
 * by the service role `warden_svc`, and an in-process Warden in front of it.
 */
import { startPgCluster, type PgCluster } from '../../src/embedded/pg-cluster.js';
import { parseConfig } from '../../src/config/load.js';
import type { WardenConfig } from '../../src/config/types.js';
import { startWarden, type Warden } from '../../src/app.js';
import type { SessionHooks } from '../../src/contract/statement-hooks.js';
import { silentLogger, createLogger } from '../../src/log/logger.js';
import pg from 'pg';
import type { LoginRateLimitOptions } from '../../src/auth/rate-limit.js';

export const SVC_PASSWORD = 'svc-Secret-9f8e';
export const PASSWORDS = { alice: 'alice-pw-1', bob: 'bob-pw-2', agent: 'agent-pw-3' } as const;

export interface TestEnv {
  cluster: PgCluster;
  warden: Warden;
  config: WardenConfig;
  /** pg client config for an identity through Warden. */
  client(identity?: keyof typeof PASSWORDS, database?: string): pg.ClientConfig;
  connect(identity?: keyof typeof PASSWORDS, database?: string): Promise<pg.Client>;
  /** A second Warden on the same cluster with its own config / hooks. */
  restart(o: { yaml?: string; hooks?: SessionHooks }): Promise<void>;
  stop(): Promise<void>;
}

export function baseYaml(pgPort: number, extra = ''): string {
  return `version: 1
listen: { host: 127.0.0.1, port: 0 }
databases:
  app:
    upstream: postgres://warden_svc:${SVC_PASSWORD}@127.0.0.1:${pgPort}/app
    environment: test
identities:
  - name: alice
    kind: human
    groups: [analysts]
    password: ${PASSWORDS.alice}
  - name: bob
    kind: service
    password: ${PASSWORDS.bob}
  - name: agent
    kind: agent
    password: ${PASSWORDS.agent}
${extra}`;
}

export async function startCluster(settings?: Record<string, string>): Promise<PgCluster> {
  const cluster = await startPgCluster({ settings });
  await cluster.query(`CREATE ROLE warden_svc LOGIN PASSWORD '${SVC_PASSWORD}'`);
  await cluster.query('CREATE DATABASE app OWNER warden_svc');
  return cluster;
}

export async function startEnv(
  o: { yaml?: (pgPort: number) => string; hooks?: SessionHooks; cluster?: PgCluster; loginRateLimit?: LoginRateLimitOptions } = {},
): Promise<TestEnv> {
  const cluster = o.cluster ?? (await startCluster());
  const log = process.env.WARDEN_TEST_LOG ? createLogger('debug') : silentLogger();
  let config = parseConfig((o.yaml ?? ((p) => baseYaml(p)))(cluster.port), '/tmp/warden-test.yaml', {});
  let warden = await startWarden({ config, log, hooks: o.hooks, loginRateLimit: o.loginRateLimit });
  const env: TestEnv = {
    cluster,
    get warden() {
      return warden;
    },
    get config() {
      return config;
    },
    client: (identity = 'alice', database = 'app') => ({
      host: '127.0.0.1',
      port: warden.port,
      user: identity,
      password: PASSWORDS[identity],
      database,
    }),
    async connect(identity = 'alice', database = 'app') {
      const c = new pg.Client(env.client(identity, database));
      await c.connect();
      return c;
    },
    async restart(r) {
      await warden.close();
      config = parseConfig(r.yaml ?? baseYaml(cluster.port), '/tmp/warden-test.yaml', {});
      warden = await startWarden({ config, log, hooks: r.hooks });
    },
    async stop() {
      await warden.close();
      if (!o.cluster) await cluster.stop();
    },
  };
  return env;
}

/** Run a query as the superuser, directly on the cluster (not through Warden). */
export async function direct(cluster: PgCluster, sql: string): Promise<pg.QueryResult> {
  return cluster.query(sql, 'app');
}
