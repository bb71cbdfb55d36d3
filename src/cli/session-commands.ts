/**
 * `warden sessions list | kill` and `warden identity suspend | resume | suspended`: clients of
 * the admin API (`--admin-url`, WARDEN_ADMIN_URL, or the config's `admin:` section), as
 * `--as IDENTITY` with the password or token in WARDEN_PASSWORD. Listing needs a group of
 * `admin.operators` or `admin.auditors`; the rest `admin.operators` (docs/operations.md).
 */
import type { Command } from 'commander';
import { visibleText } from '../governance/approval-text.js';
import type { SessionView } from '../admin/session-routes.js';
import { adminApi, adminUrlOption, asOption, configOption, out, type AdminOptions } from './common.js';

/** A session as `GET /api/v1/sessions` returns it: the API's own type (a type-only import, nothing loaded). */
export type ListedSession = SessionView;

interface Suspension {
  identity: string;
  reason: string;
  suspended_by: string;
  suspended_at: string;
}

/** Characters of a statement in one line of `sessions list`. */
const LIST_SQL = 60;

/** A duration as people read it: 850ms, 12.3s, 4m05s, 2h03m. */
export function humanDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(Math.floor(s % 60)).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

/** The text table of `sessions list`: one line per session, the statement abbreviated on one line. */
export function formatSessions(list: readonly ListedSession[], now = Date.now()): string {
  if (list.length === 0) return 'no sessions';
  const rows = list.map((s) => {
    const who = s.on_behalf_of ? `${s.identity} (for ${s.on_behalf_of})` : s.identity;
    const flat = s.statement === null ? '' : visibleText(s.statement).replace(/\s+/g, ' ').trim();
    const sql = flat.length > LIST_SQL ? `${flat.slice(0, LIST_SQL)}…` : flat;
    const took = s.statement_duration_ms !== null ? ` [${humanDuration(s.statement_duration_ms)}]` : '';
    return [
      s.id,
      who,
      s.kind,
      s.database,
      `${s.client_address}${s.tls ? ` ${s.tls_version ?? 'TLS'}` : ''}`,
      s.application_name ?? '-',
      humanDuration(Math.max(0, now - Date.parse(s.started_at))),
      s.approval_request ? `${s.state} (${s.approval_request})` : s.state,
      `${sql}${took}`,
    ];
  });
  const head = ['ID', 'IDENTITY', 'KIND', 'DATABASE', 'CLIENT', 'APPLICATION', 'AGE', 'STATE', 'STATEMENT'];
  const all = [head, ...rows];
  const widths = head.map((_, i) => Math.max(...all.map((r) => r[i].length)));
  return all.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  ').trimEnd()).join('\n');
}

type Opts = AdminOptions & { json?: boolean };

/** Registers `sessions` and adds `suspend`, `resume`, `suspended` to the `identity` command (created if missing). */
export function registerSessionCommands(program: Command): void {
  const sessions = program.command('sessions').description('who is connected to this Warden, and ending a session');
  sessions
    .command('list')
    .description('the sessions of the Warden instance the admin API belongs to (operators and auditors)')
    .addOption(configOption())
    .addOption(adminUrlOption())
    .addOption(asOption())
    .option('--json', 'machine-readable output (every field)')
    .action(async (o: Opts) => {
      const { sessions: list } = await adminApi(o)<{ sessions: ListedSession[] }>('GET', '/sessions');
      out(o.json, list, () => formatSessions(list));
    });
  sessions
    .command('kill <id>')
    .description('end a session: its running statement is cancelled and the client told why (57P01); operators only')
    .addOption(configOption())
    .addOption(adminUrlOption())
    .addOption(asOption())
    .requiredOption('--reason <text>', 'why (the client sees it; recorded in the audit log)')
    .option('--json', 'machine-readable output')
    .action(async (id: string, o: Opts & { reason: string }) => {
      const r = await adminApi(o)<{ killed: string; identity: string }>('POST', `/sessions/${encodeURIComponent(id)}/kill`, { reason: o.reason });
      out(o.json, r, () => `session ${r.killed} (${r.identity}) ended`);
    });

  const identity = program.commands.find((c) => c.name() === 'identities' || c.name() === 'identity') ?? program.command('identity').description('who may connect');
  identity
    .command('suspend <name>')
    .description("end the identity's sessions and refuse its logins on every Warden sharing the state store, until resumed; operators only")
    .addOption(configOption())
    .addOption(adminUrlOption())
    .addOption(asOption())
    .requiredOption('--reason <text>', 'why (its sessions and refused logins are told; recorded in the audit log)')
    .option('--json', 'machine-readable output')
    .action(async (name: string, o: Opts & { reason: string }) => {
      const r = await adminApi(o)<{ suspended: string; sessions_ended: string[] }>('POST', `/identities/${encodeURIComponent(name)}/suspend`, { reason: o.reason });
      out(o.json, r, () => `identity ${r.suspended} suspended; ${r.sessions_ended.length} session(s) ended here (other instances within a few seconds)`);
    });
  identity
    .command('resume <name>')
    .description('lift a suspension: the identity may log in again; operators only')
    .addOption(configOption())
    .addOption(adminUrlOption())
    .addOption(asOption())
    .option('--json', 'machine-readable output')
    .action(async (name: string, o: Opts) => {
      const r = await adminApi(o)<{ resumed: string }>('POST', `/identities/${encodeURIComponent(name)}/resume`, {});
      out(o.json, r, () => `identity ${r.resumed} resumed`);
    });
  identity
    .command('suspended')
    .description('the identities suspended now (operators and auditors)')
    .addOption(configOption())
    .addOption(adminUrlOption())
    .addOption(asOption())
    .option('--json', 'machine-readable output')
    .action(async (o: Opts) => {
      const { suspensions } = await adminApi(o)<{ suspensions: Suspension[] }>('GET', '/suspensions');
      out(o.json, suspensions, () =>
        suspensions.length === 0 ? 'no identity is suspended' : suspensions.map((s) => `${s.identity}  by ${s.suspended_by} at ${s.suspended_at}: ${s.reason}`).join('\n'),
      );
    });
}
