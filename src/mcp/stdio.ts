/**
 * `warden mcp --config FILE`: Warden's MCP server over stdio, for one agent.
 * The agent's credential is `WARDEN_TOKEN` (a token from `warden token issue`,
 * or an OIDC JWT); statements go to the Warden listener named by the config's
 * `listen:` (or --host/--port) as that identity. Nothing is written to stdout
 * but MCP messages; problems go to stderr.
 */
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import type { WardenConfig } from '../config/types.js';
import { CliError, load } from '../cli/common.js';
import { callerOf } from './identity.js';
import type { StateStore } from '../store/types.js';
import { WireSession } from './wire-session.js';
import { createWardenMcpServer } from './server.js';
import { createCodeAccess } from './explain.js';
import { connectHost, sslFor } from './net.js';

async function openState(config: WardenConfig): Promise<StateStore | undefined> {
  if (!config.state) return undefined;
  const { openStateStore } = await import('../store/open.js');
  return openStateStore(config.state.store);
}

export interface McpStdioOptions {
  config?: string;
  host?: string;
  port?: string;
}

export async function runMcpStdio(o: McpStdioOptions): Promise<void> {
  const credential = process.env.WARDEN_TOKEN;
  if (!credential) throw new CliError('WARDEN_TOKEN is not set: issue a token for the agent (warden token issue --identity <agent> --ttl 8h) and pass it in the environment', 2);
  const config = load(o.config);
  const state = await openState(config);
  const caller = await callerOf(config, state, credential);
  if (!caller) await state?.close();
  if (!caller) throw new CliError('WARDEN_TOKEN is not a valid token (unknown, expired or revoked) for any identity of this configuration', 1);
  const host = connectHost(o.host ?? config.listen.host);
  const port = o.port !== undefined ? Number(o.port) : config.listen.port;
  if (!Number.isInteger(port) || port <= 0 || port > 65535) throw new CliError('--port: a port number is needed (listen.port is 0 in the config)', 2);
  const wire = new WireSession({ host, port, user: caller.user, password: credential, ssl: sslFor(config, host) });
  // Log in at once: a refused login is a startup error, not a surprise at the first call.
  const refused = await wire.login(caller.scope ?? Object.keys(config.databases)[0]!);
  if (refused) throw new CliError(`logging in to Warden at ${host}:${port} as ${caller.user} failed: ${refused.message} (SQLSTATE ${refused.code})`, 1);
  const code = createCodeAccess();
  const server = createWardenMcpServer({ config: () => config, caller, wire, code, ...(state ? { request: (id: string) => state.getRequest(id) } : {}) });
  const transport = new StdioServerTransport();
  const done = new Promise<void>((resolve) => (transport.onclose = resolve));
  process.stdin.on('end', () => void server.close());
  await server.connect(transport);
  await done;
  await wire.close();
  await code.close();
  await state?.close();
}
