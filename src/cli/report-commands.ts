/**
 * `warden report` (the compliance report of a period: HTML, JSON, CSV) and
 * `warden policy backtest` (a proposed policy replayed on a period's recorded
 * statements). Both read the audit store the configuration names, read-only.
 * See docs/reports.md.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Command } from 'commander';
import { openAuditStore } from '../audit/open.js';
import type { AuditStore } from '../audit/store.js';
import type { Checkpoint } from '../audit/chain.js';
import { defaultInstanceName } from '../audit/log.js';
import { openWitness, witnessedCheckpoints } from '../audit/witness.js';
import { parseStore } from '../config/schema.js';
import type { StoreConfig, WardenConfig } from '../config/types.js';
import { parseTime, publicKeyFrom } from './audit-commands.js';
import { CliError, configOption, loadForInspection, out } from './common.js';

async function openStoreOf(config: WardenConfig, storeFlag: string | undefined): Promise<AuditStore> {
  let cfg: StoreConfig;
  if (storeFlag) {
    const r = parseStore(storeFlag, true);
    if (!r.ok) throw new CliError(`--store: ${r.error}`, 2);
    cfg = { kind: r.value.kind, location: r.value.kind === 'postgres' ? r.value.location : path.resolve(r.value.location) };
  } else {
    if (!config.audit) throw new CliError(`${config.source}: audit: not configured (no audit log to report on); pass --store to read one directly`, 2);
    cfg = config.audit.store;
  }
  if (cfg.kind !== 'postgres' && !fs.existsSync(cfg.location)) throw new CliError(`${cfg.kind}:${cfg.location}: no audit log there`, 1);
  try {
    return await openAuditStore(cfg, { readOnly: true });
  } catch (err) {
    throw new CliError((err as Error).message, 1);
  }
}

/** A configuration with nothing in it, for `report --store` without a config. */
function bareConfig(): WardenConfig {
  return { version: 1, source: '<none>', hash: '', listen: { host: '127.0.0.1', port: 6432, maxMessageSize: 1 << 30 }, databases: {}, identities: [], rules: [], default: 'allow', limits: [] };
}

function periodOf(o: { from?: string; to?: string }): { from: string; to: string } {
  if (!o.from || !o.to) throw new CliError('--from and --to are required (ISO-8601, e.g. 2026-11-01, or a duration ago: 30d)', 2);
  const p = { from: parseTime(o.from, '--from'), to: parseTime(o.to, '--to') };
  if (p.from >= p.to) throw new CliError(`--from (${p.from}) must be before --to (${p.to})`, 2);
  return p;
}

function capOf(v: string | undefined): number {
  const n = v === undefined ? 5000 : Number(v);
  if (!Number.isSafeInteger(n) || n < 1) throw new CliError(`--max-rows: "${v}" is not a positive integer`, 2);
  return n;
}

/** A progress bar on a terminal (stderr); nothing otherwise. */
function progressBar(enabled: boolean, what: string): { update(done: number, total: number, label?: string): void; end(): void } {
  if (!enabled) return { update() {}, end() {} };
  let last = 0;
  const started = Date.now();
  return {
    update(done, total, label) {
      const now = Date.now();
      if (now - last < 100 && done < total) return;
      last = now;
      const width = 30;
      const frac = total > 0 ? Math.min(1, done / total) : 0;
      const filled = Math.round(frac * width);
      const secs = ((now - started) / 1000).toFixed(1);
      process.stderr.write(`\r${what} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${(frac * 100).toFixed(0).padStart(3)}% ${done.toLocaleString('en-US')}/${total.toLocaleString('en-US')} records ${secs}s${label ? ` ${label}` : ''}\x1b[K`);
    },
    end() {
      process.stderr.write('\r\x1b[K');
    },
  };
}

export function registerReportCommands(program: Command): void {
  program
    .command('report')
    .description('write the compliance report of a period (HTML, JSON and CSV) from the audit store the config names')
    .addOption(configOption())
    .option('--from <time>', 'start of the period (ISO-8601, or a duration ago: 30d)')
    .option('--to <time>', 'end of the period, exclusive (ISO-8601, or a duration ago)')
    .option('--database <name>', 'only this database')
    .requiredOption('--out <dir>', 'directory to write report.html, report.json and csv/ into (created if missing)')
    .option('--store <store>', "read this store instead of the config's audit.store (sqlite:PATH, jsonl:PATH, postgres://...)")
    .option('--checkpoints <file>', 'signed checkpoints exported earlier (JSON lines), besides the stored and witnessed ones')
    .option('--public-key <file>', 'Ed25519 public key (PEM) of the checkpoints (default: derived from audit.signing_key)')
    .option('--no-witness', "do not read the config's audit.witness")
    .option('--max-rows <n>', 'largest listing per section in the HTML and JSON (totals are always exact)', '5000')
    .action(async (o: { config?: string; from?: string; to?: string; database?: string; out: string; store?: string; checkpoints?: string; publicKey?: string; witness: boolean; maxRows?: string }) => {
      // With --store and no --config, the store alone: no rules, groups or sensitive map to read.
      const config: WardenConfig = o.store && !o.config && !fs.existsSync(path.resolve('warden.yaml')) ? bareConfig() : loadForInspection(o.config);
      const period = periodOf(o);
      const cap = capOf(o.maxRows);
      if (o.database !== undefined && config.source !== '<none>' && !Object.hasOwn(config.databases, o.database)) {
        process.stderr.write(`note: ${config.source} has no database "${o.database}"; reporting on its records anyway\n`);
      }
      const keyFile = o.publicKey ?? config.audit?.signingKey;
      const publicKey = keyFile ? publicKeyFrom(keyFile) : undefined;
      const store = await openStoreOf(config, o.store);
      const [{ buildReport }, { renderHtml }, { renderCsv }] = await Promise.all([import('../report/build.js'), import('../report/render-html.js'), import('../report/render-csv.js')]);
      const checkpoints: Checkpoint[] = [];
      if (o.checkpoints) {
        const text = fs.readFileSync(o.checkpoints, 'utf8').trim();
        if (text.startsWith('[')) checkpoints.push(...(JSON.parse(text) as Checkpoint[]));
        else for (const line of text.split('\n')) if (line.trim()) checkpoints.push(JSON.parse(line) as Checkpoint);
      }
      const witnesses = o.witness && !o.store ? (config.audit?.witness ?? []).filter((c) => c.kind === 'file' || c.kind === 'postgres').map((c) => openWitness(c, { readOnly: true })) : [];
      const bar = progressBar(process.stderr.isTTY === true, 'report');
      const t0 = Date.now();
      let report;
      try {
        let notes: { description: string; checkpoints: number; error?: string }[] = [];
        if (witnesses.length > 0) {
          const w = await witnessedCheckpoints(store, witnesses, { ownInstance: config.audit?.instance ?? defaultInstanceName(config.listen.port) });
          checkpoints.push(...w.checkpoints);
          notes = w.readings.map((r) => ({ description: r.description, checkpoints: r.checkpoints, ...(r.error !== undefined ? { error: r.error } : {}) }));
        }
        report = await buildReport(store, {
          ...period,
          ...(o.database !== undefined ? { database: o.database } : {}),
          config: { rules: config.rules, identities: config.identities, sensitive: config.sensitive, report: config.report },
          checkpoints,
          witnesses: notes,
          publicKey,
          cap,
          onProgress: (p) => bar.update(p.done, p.total, p.instance),
        });
      } finally {
        bar.end();
        await Promise.all(witnesses.map((w) => w.close()));
        await store.close();
      }
      const dir = path.resolve(o.out);
      fs.mkdirSync(path.join(dir, 'csv'), { recursive: true, mode: 0o700 });
      const write = (file: string, text: string): void => fs.writeFileSync(path.join(dir, file), text, { mode: 0o600 });
      write('report.json', `${JSON.stringify(report, null, 2)}\n`);
      write('report.html', renderHtml(report));
      for (const [name, text] of Object.entries(renderCsv(report))) write(path.join('csv', name), text);
      const secs = ((Date.now() - t0) / 1000).toFixed(1);
      const S = report.sections;
      const lines = [
        report.integrity.ok ? `OK   ${report.integrity.verdict}` : `FAIL ${report.integrity.verdict}`,
        `period ${report.period.from} to ${report.period.to}${report.period.database ? ` (database ${report.period.database})` : ''}: ${report.totals.records.toLocaleString('en-US')} records, ${report.totals.statements.toLocaleString('en-US')} statements, ${report.totals.refused} refused`,
        `sensitive: ${S.sensitiveReads.statements} statement(s), ${S.sensitiveReads.unmaskedStatements} not masked · approvals: ${S.approvals.total} · limits: ${S.limits.total} · schema changes: ${S.schemaChanges.total} · agents: ${S.agents.statements} statement(s) · without intent: ${S.missingIntent.total} · privileged: ${S.privileged.identities.length} identit(ies) · suspensions: ${S.operations.suspensions.total} · kills: ${S.operations.kills.total} · config: ${S.operations.config.total}`,
        `wrote ${path.join(dir, 'report.html')}, report.json and csv/ (${Object.keys(renderCsv(report)).length} files) in ${secs} s`,
      ];
      process.stdout.write(`${lines.join('\n')}\n`);
      if (!report.integrity.ok) process.exitCode = 1;
    });

  const policy = program.commands.find((c) => c.name() === 'policy') ?? program.command('policy').description('dry-run and test the policy');
  policy
    .command('backtest')
    .description("replay a period's recorded statements under the policy of a proposed config and list what would change")
    .addOption(configOption().makeOptionMandatory(false))
    .option('--from <time>', 'start of the period (ISO-8601, or a duration ago: 30d)')
    .option('--to <time>', 'end of the period, exclusive')
    .option('--database <name>', 'only statements on this database')
    .option('--store <store>', "read this store instead of the proposed config's audit.store")
    .option('--max-rows <n>', 'statements listed per category (counts are always exact)', '5000')
    .option('--json', 'machine-readable output')
    .action(async (o: { config?: string; from?: string; to?: string; database?: string; store?: string; maxRows?: string; json?: boolean }) => {
      const config = loadForInspection(o.config);
      const period = periodOf(o);
      const cap = capOf(o.maxRows);
      const store = await openStoreOf(config, o.store);
      const { backtest, formatBacktest } = await import('../report/backtest.js');
      const bar = progressBar(process.stderr.isTTY === true && !o.json, 'backtest');
      let result;
      try {
        result = await backtest(store, {
          ...period,
          ...(o.database !== undefined ? { database: o.database } : {}),
          policy: { rules: config.rules, default: config.default, sensitive: config.sensitive, limits: config.limits, identities: config.identities, databases: config.databases },
          cap,
          onProgress: (p) => bar.update(p.done, p.done, p.instance),
        });
      } finally {
        bar.end();
        await store.close();
      }
      out(o.json, result, () => formatBacktest(result));
    });
}
