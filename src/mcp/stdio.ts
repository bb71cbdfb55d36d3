/**
 * `warden mcp --config FILE`: Warden's MCP server over stdio, for one agent.
 * The agent's credential is `WARDEN_TOKEN` (a token from `warden token issue`,
 * or an OIDC JWT); with a token, `WARDEN_IDENTITY` (or `--as`) names its
 * identity. Statements go to the Warden listener named by the config's `listen:`
 * (or --host/--port) as that identity; the listener authenticates it.
 *
 * The process loads only what it needs of the configuration (src/mcp/agent-config.ts):
 * no upstream credential, no identity's password, no masking key, no state store.
 * Nothing is written to stdout but MCP messages; problems go to stderr.
 */
import { ConfigError } from '../config/load.js';
import { CliError, configPath } from '../cli/common.js';
import { callerOf, TOKEN_SHAPE, type Caller } from './identity.js';
import { WireSession } from './wire-session.js';
import { createFastPath, createWardenMcpServer, type McpContext } from './server.js';
import { LineTransport } from './stdio-transport.js';
import { connectHost, sslFor } from './net.js';
import { loadAgentConfig } from './agent-config.js';

const ON_BEHALF_OF_SQL = "SELECT pg_catalog.current_setting('warden.on_behalf_of', true)";

export interface McpStdioOptions {
  config?: string;
  host?: string;
  port?: string;
  as?: string;
  database?: string;
}

export async function runMcpStdio(o: McpStdioOptions): Promise<void> {
  const credential = process.env.WARDEN_TOKEN;
  if (!credential) throw new CliError('WARDEN_TOKEN is not set: issue a token for the agent (warden token issue --identity <agent> --ttl 8h) and pass it in the environment', 2);
  let loaded;
  try {
    loaded = loadAgentConfig(configPath(o.config));
  } catch (err) {
    if (err instanceof ConfigError) throw new CliError(err.message, 2);
    throw err;
  }
  const { config, listenTls } = loaded;
  const database = o.database ?? process.env.WARDEN_DATABASE;
  if (database !== undefined && !Object.hasOwn(config.databases, database)) throw new CliError(`--database / WARDEN_DATABASE: no database named "${database}" in the configuration`, 2);
  let caller: Caller | undefined;
  if (TOKEN_SHAPE.test(credential)) {
    const name = o.as ?? process.env.WARDEN_IDENTITY;
    if (!name) throw new CliError("WARDEN_IDENTITY is not set: name the token's identity (the --identity it was issued for) in WARDEN_IDENTITY or --as", 2);
    const identity = config.identities.find((i) => i.name === name);
    if (!identity) throw new CliError(`WARDEN_IDENTITY: no identity named "${name}" in the configuration`, 2);
    caller = { user: name, identity, credential: 'token' };
  } else {
    caller = await callerOf(config, undefined, credential);
    if (!caller) throw new CliError('WARDEN_TOKEN is neither a Warden token (wdt_…) nor an unexpired OIDC JWT this configuration knows (oidc:)', 1);
  }
  // The database this agent works in: a token limited to one (--scope) must name it, as nothing here can read the token's scope.
  if (database !== undefined) caller = { ...caller, scope: database };
  const host = connectHost(o.host ?? config.listen.host);
  const port = o.port !== undefined ? Number(o.port) : config.listen.port;
  if (!Number.isInteger(port) || port <= 0 || port > 65535) throw new CliError('--port: a port number is needed (listen.port is 0 in the config)', 2);
  const wire = new WireSession({ host, port, user: caller.user, password: credential, ssl: sslFor(listenTls, host) });
  // Log in at once: a refused login is a startup error, not a surprise at the first call.
  const first = database ?? Object.keys(config.databases)[0]!;
  const refused = await wire.login(first);
  if (refused) {
    await wire.close();
    const scoped = refused.code.startsWith('28') && database === undefined && Object.keys(config.databases).length > 1 ? ' (a token limited to one database: name it in WARDEN_DATABASE or --database)' : '';
    throw new CliError(`logging in to Warden at ${host}:${port} as ${caller.user} to ${first} failed: ${refused.message} (SQLSTATE ${refused.code})${scoped}`, 1);
  }
  // No catalog reader (it would need the upstream's credentials): explain_policy says the code a statement runs is judged when it is sent.
  // The on-behalf-of user of a token is in the state store, which this process does not open: Warden propagates it to the session.
  let onBehalfOf: Promise<string | undefined> | undefined;
  const readOnBehalfOf = (): Promise<string | undefined> =>
    (onBehalfOf ??= wire
      .run(first, ON_BEHALF_OF_SQL, undefined, 1, WireSession.keyOf(first, ON_BEHALF_OF_SQL, []))
      .then((r) => (r.kind === 'result' ? r.sets[0]?.rows[0]?.[0] || undefined : undefined)));
  const ctx: McpContext = { config: () => config, caller, wire, ...(caller.credential === 'token' ? { onBehalfOf: readOnBehalfOf } : {}) };
  const server = createWardenMcpServer(ctx);
  // Warden's own stdio transport, with the fast path for ping and query calls (stdio-transport.ts, server.ts).
  const transport = new LineTransport(process.stdin, process.stdout, createFastPath(ctx));
  const done = new Promise<void>((resolve) => (transport.onclose = resolve));
  process.stdin.on('end', () => void server.close());
  await server.connect(transport);
  await done;
  await wire.close();
}
