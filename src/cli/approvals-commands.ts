/**
 * `warden approvals list | show | approve | deny` and `warden grants list |
 * revoke`: a client of the admin API (`--admin-url`, WARDEN_ADMIN_URL, or the
 * config's `admin:` section — only that section is read), authenticated as
 * `--as IDENTITY` (or WARDEN_IDENTITY) with the password or token in
 * WARDEN_PASSWORD — never on the command line.
 */
import { Command, Option } from 'commander';
import { count, visibleText } from '../governance/approval-text.js';
import { adminApi, adminUrlOption, asOption, CliError, configOption, out } from './common.js';
import type { ApprovalView } from '../contract/admin-api.js';

interface Grant {
  id: string;
  identity: string;
  rule: string;
  database?: string;
  expiresAt: string;
  revokedAt?: string;
}

/** Characters of SQL in one line of `approvals list`. */
const LIST_SQL = 80;

/** One line of `approvals list`: the statement abbreviated, visibly, with its full length. */
function listSql(r: ApprovalView): string {
  const flat = visibleText(r.sql).replace(/\r?\n/g, ' ⏎ ').replace(/\t/g, ' ');
  if (flat.length <= LIST_SQL && !r.sqlTruncated) return flat;
  return `${flat.slice(0, LIST_SQL)}… [${count(r.sqlLength)} characters: approvals show ${r.id}]`;
}

/**
 * The statement exactly as stored, line by line (whitespace kept: flattening would let a
 * `--` comment seem to hide what follows it), with characters that could hide text escaped.
 */
function sqlBlock(r: ApprovalView): string[] {
  const lines = [`  sql:      ${count(r.sqlLength)} characters, sha256 ${r.sqlSha256}${r.sqlTruncated ? ' — CUT below; the full text: --full' : ''}`];
  for (const l of visibleText(r.sql).split(/\r?\n/)) lines.push(`    | ${l}`);
  if (r.sqlTruncated) lines.push(`  NOTE: only the first part of the statement is shown (${count(r.sqlLength)} characters in all): warden approvals show ${r.id} --full`);
  return lines;
}

function formatRequest(r: ApprovalView): string {
  const lines = [
    `${r.id}  ${r.status}  ${r.mode}`,
    `  who:      ${r.identity}${r.onBehalfOf ? ` on behalf of ${r.onBehalfOf}` : ''}`,
    `  where:    ${r.database}${r.environment ? ` (${r.environment})` : ''}`,
    `  rules:    ${r.rules.map((x) => `${x.rule} (${x.count} of ${x.groups.join('/')})${x.reason ? `: ${x.reason}` : ''}`).join('; ')}`,
    ...sqlBlock(r),
  ];
  if (r.params && r.params.length > 0) {
    lines.push('  params:');
    r.params.forEach((p, i) => {
      const cut = r.paramsTruncated?.includes(i) ? '  (CUT: the full value with --full)' : '';
      lines.push(`    $${i + 1} = ${p === null ? 'NULL' : visibleText(JSON.stringify(p))}${cut}`);
    });
  }
  if (r.classes && r.classes.length > 0) lines.push(`  classes:  ${r.classes.join(', ')}`);
  if (r.tables.length > 0) lines.push(`  tables:   ${r.tables.join(', ')}`);
  if (Object.keys(r.intent).length > 0) lines.push(`  intent:   ${Object.entries(r.intent).map(([k, v]) => `${k}=${v}`).join(' ')}`);
  lines.push(`  created:  ${r.createdAt}, expires ${r.expiresAt}`);
  for (const d of r.decisions) lines.push(`  ${d.decision === 'approve' ? 'approved' : 'denied'} by ${d.approver} at ${d.at}: ${d.reason}`);
  return lines.join('\n');
}

export function registerApprovalCommands(program: Command): void {
  const approvals = program.command('approvals').description('statements waiting for approval, and decisions on them');

  approvals
    .command('list')
    .description('approval requests, newest first (pending by default)')
    .addOption(configOption())
    .addOption(adminUrlOption())
    .addOption(asOption())
    .addOption(new Option('--status <status>', 'which requests').choices(['pending', 'approved', 'denied', 'expired', 'cancelled', 'used', 'all']).default('pending'))
    .option('--json', 'machine-readable output')
    .action(async (o: { config?: string; adminUrl?: string; as?: string; status: string; json?: boolean }) => {
      const api = adminApi(o);
      const q = o.status === 'all' ? '' : `?status=${o.status}`;
      const { requests } = await api<{ requests: ApprovalView[] }>('GET', `/approvals${q}`);
      out(o.json, requests, () =>
        requests.length === 0
          ? `no ${o.status === 'all' ? '' : `${o.status} `}approval requests`
          : requests.map((r) => `${r.id}  ${r.status.padEnd(9)} ${r.identity.padEnd(12)} ${r.database.padEnd(10)} ${r.rules.map((x) => x.rule).join(',')}  ${listSql(r)}`).join('\n'),
      );
    });

  approvals
    .command('show <id>')
    .description('one request: the statement, the rules, the decisions')
    .addOption(configOption())
    .addOption(adminUrlOption())
    .addOption(asOption())
    .option('--full', 'the statement and parameters in full, even above approvals.text_cap (default 1 MiB)')
    .option('--json', 'machine-readable output')
    .action(async (id: string, o: { config?: string; adminUrl?: string; as?: string; full?: boolean; json?: boolean }) => {
      const api = adminApi(o);
      const r = await api<ApprovalView>('GET', `/approvals/${encodeURIComponent(id)}${o.full ? '?full=true' : ''}`);
      out(o.json, r, () => formatRequest(r));
    });

  for (const decision of ['approve', 'deny'] as const) {
    const cmd = approvals
      .command(`${decision} <id>`)
      .description(decision === 'approve' ? 'approve a request (with --grant N: let the identity run such statements for N minutes)' : 'deny a request')
      .addOption(configOption())
      .addOption(adminUrlOption())
    .addOption(asOption())
      .requiredOption('--reason <text>', 'why (recorded in the audit log)')
      .option('--json', 'machine-readable output');
    if (decision === 'approve') cmd.option('--grant <minutes>', 'approve as a just-in-time grant for this many minutes');
    cmd.action(async (id: string, o: { config?: string; adminUrl?: string; as?: string; reason: string; grant?: string; json?: boolean }) => {
      const api = adminApi(o);
      let grant: number | undefined;
      if (o.grant !== undefined) {
        grant = Number(o.grant);
        if (!Number.isInteger(grant) || grant < 1) throw new CliError(`--grant: "${o.grant}" is not a whole number of minutes`, 2);
      }
      const r = await api<ApprovalView>('POST', `/approvals/${encodeURIComponent(id)}/${decision}`, { reason: o.reason, ...(grant !== undefined ? { grant_minutes: grant } : {}) });
      out(o.json, r, () => `${r.id}: ${r.status}${r.status === 'pending' ? ' (more approvals needed)' : ''}`);
    });
  }

  const grants = program.command('grants').description('just-in-time grants given with approvals approve --grant');
  grants
    .command('list')
    .addOption(configOption())
    .addOption(adminUrlOption())
    .addOption(asOption())
    .option('--all', 'include expired and revoked grants')
    .option('--json', 'machine-readable output')
    .action(async (o: { config?: string; adminUrl?: string; as?: string; all?: boolean; json?: boolean }) => {
      const api = adminApi(o);
      const { grants: list } = await api<{ grants: Grant[] }>('GET', `/grants${o.all ? '?all=true' : ''}`);
      out(o.json, list, () =>
        list.length === 0 ? 'no grants' : list.map((g) => `${g.id}  ${g.identity.padEnd(12)} ${g.rule}  until ${g.expiresAt}${g.revokedAt ? ` (revoked ${g.revokedAt})` : ''}`).join('\n'),
      );
    });
  grants
    .command('revoke <id>')
    .addOption(configOption())
    .addOption(adminUrlOption())
    .addOption(asOption())
    .action(async (id: string, o: { config?: string; adminUrl?: string; as?: string }) => {
      const api = adminApi(o);
      await api('DELETE', `/grants/${encodeURIComponent(id)}`);
      process.stdout.write(`${id}: revoked\n`);
    });
}
