/**
 * `warden token issue | list | revoke`: short-lived login tokens in the state
 * store of the config (`state.store`). The token is printed once, alone on the
 * last line of stdout; only its SCRAM verifier is stored. Issuing and revoking
 * are audit events, written to the audit store on the CLI's own chain
 * (`cli@<host>`), so the running Warden's chain is never forked. Only the
 * sections they use are read from the config (state, audit, and for issue the
 * one identity: its password or verifier salts the token's verifier).
 */
import { hostname } from 'node:os';
import { Command } from 'commander';
import type { WardenConfig } from '../config/types.js';
import { loadConfigPart } from '../config/load.js';
import { parseDuration } from '../config/schema.js';
import type { StateStore, TokenRecord } from '../store/types.js';
import { issueToken, MAX_TOKEN_TTL_MS } from '../governance/tokens.js';
import type { AuditData } from '../audit/log.js';
import { silentLogger } from '../log/logger.js';
import { CliError, configOption, configPath, out } from './common.js';

type StoresPart = Pick<WardenConfig, 'source' | 'state' | 'audit'>;

/** The state and audit sections of the config, alone. */
function storesOf(file: string | undefined): StoresPart {
  return loadConfigPart(configPath(file), { sections: ['state', 'audit'] });
}

async function stateOf(config: StoresPart): Promise<StateStore> {
  if (!config.state) throw new CliError(`${config.source}: state: not configured — tokens are kept in the state store (state: { store: sqlite:./warden-state.db })`, 2);
  const { openStateStore } = await import('../store/open.js');
  try {
    return await openStateStore(config.state.store);
  } catch (err) {
    throw new CliError(`${config.source}: state: ${(err as Error).message}`, 1);
  }
}

/** Records an event on the CLI's own chain of the configured audit store (if any). */
async function auditEvent(config: StoresPart, type: string, data: AuditData): Promise<void> {
  if (!config.audit) return;
  const [{ AuditLog }, { openAuditStore }] = await Promise.all([import('../audit/log.js'), import('../audit/open.js')]);
  const store = await openAuditStore(config.audit.store, { durability: config.audit.durability });
  const log = await AuditLog.open({ store, instance: `cli@${hostname()}`, onFailure: 'block', log: silentLogger() });
  try {
    await log.writeAhead(type, data);
  } finally {
    await log.close();
  }
}

function ttlOf(v: string): number {
  const days = /^\s*(\d{1,3})\s*d\s*$/.exec(v);
  const ms = days ? Number(days[1]) * 86_400_000 : (() => {
    const r = parseDuration(v);
    if (!r.ok) throw new CliError(`--ttl: ${r.error}`, 2);
    return r.value;
  })();
  if (ms > MAX_TOKEN_TTL_MS) throw new CliError('--ttl: at most 30d', 2);
  return ms;
}

function row(t: TokenRecord, now: number): string {
  const state = t.revokedAt ? `revoked ${t.revokedAt}` : Date.parse(t.expiresAt) <= now ? `expired ${t.expiresAt}` : `valid until ${t.expiresAt}`;
  return `${t.id}  ${t.identity.padEnd(12)} ${state}${t.onBehalfOf ? `  on behalf of ${t.onBehalfOf}` : ''}${t.scope ? `  database ${t.scope}` : ''}`;
}

export function registerTokenCommands(program: Command): void {
  const token = program.command('token').alias('tokens').description('short-lived login tokens (used as the password)');

  token
    .command('issue')
    .description('issue a token for an identity; prints it alone on the last line (it is not stored and cannot be shown again)')
    .addOption(configOption())
    .requiredOption('--identity <name>', 'the identity the token logs in as')
    .option('--ttl <duration>', 'lifetime, e.g. 15m, 1h, 7d (at most 30d)', '1h')
    .option('--on-behalf-of <user>', 'the user an agent acts for (recorded and propagated as warden.on_behalf_of)')
    .option('--scope <database>', 'only for this database')
    .option('--json', 'machine-readable output (the token is in it)')
    .action(async (o: { config?: string; identity: string; ttl: string; onBehalfOf?: string; scope?: string; json?: boolean }) => {
      const config = loadConfigPart(configPath(o.config), { sections: ['identities', 'state', 'audit'], identities: [o.identity] });
      const identity = config.identities.find((i) => i.name === o.identity);
      if (!identity) throw new CliError(`no identity named "${o.identity}" in ${config.source}`, 1);
      if (o.scope !== undefined && !config.databaseNames.includes(o.scope)) throw new CliError(`--scope: no database named "${o.scope}"`, 2);
      const ttlMs = ttlOf(o.ttl);
      const store = await stateOf(config);
      try {
        const { record, token } = await issueToken(store, identity, { ttlMs, onBehalfOf: o.onBehalfOf, scope: o.scope, issuedBy: `cli@${hostname()}` });
        await auditEvent(config, 'token.issued', { token: record.id, identity: record.identity, on_behalf_of: record.onBehalfOf, scope: record.scope, expires_at: record.expiresAt });
        if (o.json) out(true, { ...record, verifier: undefined, token }, () => '');
        else {
          process.stderr.write(`token ${record.id} for ${record.identity}, valid until ${record.expiresAt}${record.scope ? ` on ${record.scope}` : ''}. Use it as the password; it is shown only now:\n`);
          process.stdout.write(`${token}\n`);
        }
      } finally {
        await store.close();
      }
    });

  token
    .command('list')
    .description('tokens (valid ones; --all for expired and revoked)')
    .addOption(configOption())
    .option('--identity <name>', 'of one identity')
    .option('--all', 'include expired and revoked tokens')
    .option('--json', 'machine-readable output')
    .action(async (o: { config?: string; identity?: string; all?: boolean; json?: boolean }) => {
      const store = await stateOf(storesOf(o.config));
      try {
        const tokens = await store.listTokens({ identity: o.identity, all: o.all });
        const now = Date.now();
        // The verifier is a hash of the secret: still not something to print.
        const shown = tokens.map((t) => ({ ...t, verifier: undefined }));
        out(o.json, shown, () => (tokens.length === 0 ? 'no tokens' : tokens.map((t) => row(t, now)).join('\n')));
      } finally {
        await store.close();
      }
    });

  token
    .command('revoke <id>')
    .description('revoke a token: new logins fail, and its sessions end at their next statement')
    .addOption(configOption())
    .action(async (id: string, o: { config?: string }) => {
      const config = storesOf(o.config);
      const store = await stateOf(config);
      try {
        if (!(await store.revokeToken(id, new Date().toISOString()))) throw new CliError(`no token ${id} to revoke (unknown or already revoked)`, 1);
        await auditEvent(config, 'token.revoked', { token: id });
        process.stdout.write(`${id}: revoked\n`);
      } finally {
        await store.close();
      }
    });
}
