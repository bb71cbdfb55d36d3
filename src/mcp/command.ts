/**
 * Registers `warden mcp` (the MCP server over stdio, src/mcp/stdio.ts). The
 * server and the MCP SDK are loaded only when the command runs, so other
 * commands start as fast as before.
 */
import { Command, Option } from 'commander';
import { configOption } from '../cli/common.js';

export function registerMcpCommand(program: Command): void {
  program
    .command('mcp')
    .description('serve MCP over stdio for an agent: every statement runs through Warden as the identity of the token in WARDEN_TOKEN (see docs/agents.md)')
    .addOption(configOption())
    .addOption(new Option('--host <host>', "Warden's listener host (default: listen.host of the config)"))
    .addOption(new Option('--port <port>', "Warden's listener port (default: listen.port of the config)"))
    .addOption(new Option('--as <identity>', "the token's identity (default: WARDEN_IDENTITY; not needed for an OIDC JWT)"))
    .addOption(new Option('--database <name>', 'the database this agent works in, and the only one it is shown (default: WARDEN_DATABASE; needed for a token limited to one database)'))
    .action(async (o: { config?: string; host?: string; port?: string; as?: string; database?: string }) => {
      const { runMcpStdio } = await import('./stdio.js');
      await runMcpStdio(o);
    });
}
