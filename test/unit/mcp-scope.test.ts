/**
 * A token limited to one database (`warden token issue --scope DB`; over stdio: --database /
 * WARDEN_DATABASE) sees only that database: list_databases, the default database, the
 * resources; a call naming another is refused before anything is sent.
 */
import { describe, expect, it } from 'vitest';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import { parseConfig } from '../../src/config/load.js';
import { createWardenMcpServer } from '../../src/mcp/server.js';
import type { WireSession } from '../../src/mcp/wire-session.js';
import type { Caller } from '../../src/mcp/identity.js';

const config = parseConfig(
  `version: 1
databases:
  sales: { upstream: "postgres://svc:pw@127.0.0.1:5432/sales", environment: prod }
  hr: { upstream: "postgres://svc:pw@127.0.0.1:5432/hr" }
identities:
  - { name: bot, kind: agent, password: bot-pw }
`,
  '<mcp-scope-test>',
  {},
);

async function connect(scope: string | undefined): Promise<{ client: Client; sent: string[] }> {
  const sent: string[] = [];
  const wire = {
    run: async (database: string) => {
      sent.push(database);
      return { kind: 'result', sets: [{ command: 'SELECT', rowCount: 0, columns: [], rows: [], truncated: false }], notices: [] };
    },
    status: () => ({ known: false }),
    handedOut: () => false,
  } as unknown as WireSession;
  const caller: Caller = { user: 'bot', identity: config.identities[0]!, credential: 'token', ...(scope ? { scope } : {}) };
  const server = createWardenMcpServer({ config: () => config, caller, wire });
  const [a, b] = InMemoryTransport.createLinkedPair();
  await server.connect(a);
  const client = new Client({ name: 't', version: '1' });
  await client.connect(b);
  return { client, sent };
}

const text = (r: unknown): string => ((r as { content: { text: string }[] }).content.map((c) => c.text).join('\n'));

describe('token scope', () => {
  it('a scoped token lists only its database, defaults to it and cannot name another', async () => {
    const { client, sent } = await connect('hr');
    const dbs = JSON.parse(text(await client.callTool({ name: 'list_databases', arguments: {} }))) as Record<string, unknown>;
    expect(dbs).toMatchObject({ identity: 'bot', scope: 'hr', databases: [{ name: 'hr' }] });
    expect((dbs.databases as unknown[]).length).toBe(1);
    expect((await client.callTool({ name: 'query', arguments: { sql: 'SELECT 1' } })).isError).toBeFalsy();
    expect(sent).toEqual(['hr']);
    const other = await client.callTool({ name: 'query', arguments: { sql: 'SELECT 1', database: 'sales' } });
    expect(other.isError).toBe(true);
    expect(text(other)).toMatch(/limited to database "hr"/);
    expect(sent).toEqual(['hr']);
    const resources = (await client.listResources()).resources.map((r) => r.uri);
    expect(resources).not.toContain('warden://sales/tables');
    await client.close();
  });

  it('an unscoped token lists every database', async () => {
    const { client } = await connect(undefined);
    const dbs = JSON.parse(text(await client.callTool({ name: 'list_databases', arguments: {} }))) as { databases: { name: string }[] };
    expect(dbs.databases.map((d) => d.name)).toEqual(['sales', 'hr']);
    await client.close();
  });
});
