/**
 * `warden reload [--admin-url URL] --as NAME [--json]`: ask the running Warden to read and
 * validate its configuration file again and swap it in (`POST /api/v1/reload`, as SIGHUP
 * does). Needs an operator (`admin.operators`); the password comes from WARDEN_PASSWORD.
 * Exit status 0 when the file was applied, 1 when the running Warden refused it (the reason
 * is printed; the old configuration stays), as for any failed call.
 */
import type { Command } from 'commander';
import type { ReloadResult } from '../config/reload.js';
import { adminApi, adminUrlOption, asOption, CliError, configOption, out, type AdminOptions } from './common.js';

/** The result as a line or two of text. */
export function formatReload(r: ReloadResult): string {
  if (!r.ok) return `refused: ${r.error ?? 'unknown reason'} (the running configuration is kept)`;
  const lines = [`reloaded ${r.source} (sha256 ${r.hash ?? '?'}${r.unchanged ? ', unchanged' : ''}): each session's next statement runs under it`];
  if (r.restartNeeded.length > 0) lines.push(`these changed keys need a restart and keep their running values: ${r.restartNeeded.join(', ')}`);
  return lines.join('\n');
}

export function registerReloadCommand(program: Command): void {
  program
    .command('reload')
    .description("reload the running Warden's configuration file (as SIGHUP does), through the admin API; needs admin.operators")
    .addOption(configOption())
    .addOption(adminUrlOption())
    .addOption(asOption())
    .option('--json', 'machine-readable output')
    .action(async (o: AdminOptions & { json?: boolean }) => {
      const api = adminApi(o);
      let r: ReloadResult;
      try {
        r = await api<ReloadResult>('POST', '/reload');
      } catch (err) {
        // 422: the file was refused; the server's reason is the message.
        if (err instanceof CliError && /\(HTTP 422\)$/.test(err.message)) throw new CliError(`reload refused: ${err.message.replace(/ \(HTTP 422\)$/, '')} (the running configuration is kept)`, 1);
        throw err;
      }
      out(o.json, r, () => formatReload(r));
    });
}
