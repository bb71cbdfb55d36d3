/** Shared by the MCP tests: a config with masking, a deny rule, an approve rule and a limit; seed data; a tool-call helper. */
import fs from 'node:fs';
import path from 'node:path';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { baseYaml, direct, type TestEnv } from './warden-env.js';

export const DANA = 'dana-pw-mcp';

export const mcpYaml = (pgPort: number, d: string, audit: string, mode: 'hold' | 'reject' = 'hold'): string =>
  baseYaml(
    pgPort,
    `  - { name: dana, kind: human, groups: [dba], password: ${DANA} }
admin: { host: 127.0.0.1, port: 0 }
state: { store: "sqlite:${path.join(d, 'state.db')}" }
audit: { store: "jsonl:${audit}", durability: os }
approvals: { mode: ${mode}, timeout: 30s }
sensitive:
  columns:
    public.customers.email: email
  key: test-mask-key-0123456789abcdef
rules:
  - name: no-destructive-ddl
    match: { statement: [drop, truncate] }
    action: deny
    reason: Destructive DDL is not run through Warden
  - name: mask-pii-except-dba
    match: { not: { groups: [dba] } }
    action: mask
  - name: account-writes-need-approval
    match: { statement: [write], tables: ["public.accounts"] }
    action: approve
    reason: Account changes need a DBA
    approvers: { groups: [dba], count: 1 }
limits:
  - name: agent-rows
    match: { kind: [agent] }
    max_rows: 1000
`,
  );

export async function seed(env: TestEnv): Promise<void> {
  for (const s of [
    'CREATE TABLE public.customers (id int PRIMARY KEY, full_name text, email text NOT NULL)',
    "INSERT INTO public.customers VALUES (1, 'Ada Lovelace', 'ada@example.com'), (2, 'Alan Turing', 'alan@example.org')",
    'CREATE TABLE public.accounts (id int PRIMARY KEY, balance int)',
    'INSERT INTO public.accounts VALUES (1, 100)',
    'CREATE TABLE public.events (id int)',
    'INSERT INTO public.events SELECT g FROM generate_series(1, 5000) g',
    'GRANT ALL ON ALL TABLES IN SCHEMA public TO warden_svc',
    "CREATE FUNCTION public.wipe() RETURNS void LANGUAGE plpgsql AS $$ BEGIN DROP TABLE IF EXISTS public.scratch; END $$",
  ])
    await direct(env.cluster, s);
}

export function auditRecords(file: string, type: string): Record<string, unknown>[] {
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { type: string; data: Record<string, unknown> })
    .filter((r) => r.type === type)
    .map((r) => r.data);
}

export interface ToolAnswer {
  isError: boolean;
  text: string;
  json: Record<string, unknown> | undefined;
}

export async function call(client: Client, name: string, args: Record<string, unknown> = {}): Promise<ToolAnswer> {
  const r = (await client.callTool({ name, arguments: args })) as { isError?: boolean; content: { type: string; text: string }[] };
  const text = r.content.map((c) => c.text).join('\n');
  let json: Record<string, unknown> | undefined;
  try {
    json = JSON.parse(r.content[r.isError ? 1 : 0]?.text ?? '') as Record<string, unknown>;
  } catch {
    json = undefined;
  }
  return { isError: r.isError === true, text, json };
}

