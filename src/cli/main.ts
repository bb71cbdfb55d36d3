/**
 * The `warden` command line. Every command takes --config FILE (default
 * ./warden.yaml); list/show commands take --json; errors go to stderr with a
 * non-zero exit code (2 for configuration errors).
 */
import fs from 'node:fs';
import path from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { checkConfig, ConfigError, unknownGroupProblems } from '../config/load.js';
import { createLogger, LOG_LEVELS } from '../log/logger.js';
import type { LevelWithSilent } from 'pino';
import { PolicyError } from '../policy/patterns.js';
import { formatScramVerifier, makeScramVerifier } from '../auth/index.js';
import { CliError, configOption, configPath, DEFAULT_CONFIG, load, loadForInspection, out } from './common.js';
import { registerAuditCommands } from './audit-commands.js';
import { starterConfig } from './init-template.js';
import { registerApprovalCommands } from './approvals-commands.js';
import { registerTokenCommands } from './token-commands.js';
import { registerSessionCommands } from './session-commands.js';
import { registerReloadCommand } from './reload-command.js';
import { registerReportCommands } from './report-commands.js';
import { registerMcpCommand } from '../mcp/command.js';

/** No configuration anywhere: run the embedded demo (see src/demo). */
function parsePort(v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || n > 65535) throw new InvalidArgumentError('a port is an integer from 0 to 65535');
  return n;
}

async function runDemo(level: LevelWithSilent, ports: { port?: number; adminPort?: number }): Promise<void> {
  const log = createLogger(level);
  process.stderr.write('warden: no --config and no ./warden.yaml: starting the embedded demo (this takes a few seconds)\n');
  let demo;
  try {
    const { startDemo } = await import('../demo/demo.js');
    demo = await startDemo(log, ports);
  } catch (err) {
    throw new CliError(
      `the demo could not start: ${(err as Error).message}\n` +
        'It runs a private PostgreSQL cluster when the server binaries are found (initdb, pg_ctl; e.g. apt-get install postgresql), ' +
        'otherwise PGlite (npm install puts it in node_modules); WARDEN_DEMO_UPSTREAM=postgresql|pglite picks one. ' +
        'To run Warden against your own database instead, write a warden.yaml (warden init) and pass --config.',
      1,
    );
  }
  process.stdout.write(demo.banner);
  let stopping = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    process.stderr.write('warden: stopping the demo\n');
    void demo.stop().then(() => {
      log.flush();
      process.exit(0);
    });
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  process.on('SIGHUP', () => process.stderr.write('warden: the demo has no configuration file to reload: SIGHUP ignored\n'));
}

/** The version in package.json (two levels up from src/cli/ and from dist/cli/). */
export function wardenVersion(): string {
  const pkg = JSON.parse(fs.readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string };
  return pkg.version ?? 'unknown';
}

export function buildCli(): Command {
  const program = new Command('warden')
    .description('Identity-aware governance proxy for PostgreSQL')
    .version(wardenVersion(), '-V, --version', 'print the version')
    .showHelpAfterError()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });

  program
    .command('start')
    .description('run the proxy')
    .addOption(configOption())
    .addOption(new Option('--log-level <level>', 'log level').choices(LOG_LEVELS as string[]).default('info'))
    .option('--port <port>', "listen on this port instead of the config's listen.port (the demo: instead of 6432)", parsePort)
    .option('--admin-port <port>', "serve the admin API on this port instead of the config's admin.port (the demo: instead of 7070)", parsePort)
    .action(async (o: { config?: string; logLevel: LevelWithSilent; port?: number; adminPort?: number }) => {
      if (!o.config && !fs.existsSync(path.resolve(DEFAULT_CONFIG))) {
        await runDemo(o.logLevel === 'info' ? 'warn' : o.logLevel, { port: o.port, adminPort: o.adminPort });
        return;
      }
      // SIGHUP reloads (below); until Warden runs, it is ignored rather than fatal.
      let onHup = (): void => void process.stderr.write('warden: SIGHUP while starting: ignored\n');
      process.on('SIGHUP', () => onHup());
      /** The file with --port / --admin-port applied, at start and at each reload. */
      const withOverrides = (c: ReturnType<typeof load>): ReturnType<typeof load> => {
        if (o.port !== undefined) c = { ...c, listen: { ...c.listen, port: o.port } };
        if (o.adminPort !== undefined) {
          if (!c.admin) throw new CliError(`--admin-port: ${c.source} has no admin section`, 2);
          c = { ...c, admin: { ...c.admin, port: o.adminPort } };
        }
        return c;
      };
      const config = withOverrides(load(o.config));
      // Loaded here, not at the top: the other commands start faster without the proxy's modules.
      const { DEFAULT_DRAIN_TIMEOUT_MS, startWarden, UnsupportedConfigError } = await import('../app.js');
      const log = createLogger(o.logLevel);
      for (const p of unknownGroupProblems(config)) log.warn({ key: p.path }, `${config.source}: ${p.path}: ${p.message}`);
      let warden;
      try {
        warden = await startWarden({ config, log, loadConfig: () => withOverrides(load(config.source)) });
      } catch (err) {
        if (err instanceof UnsupportedConfigError) throw new CliError(err.message, 2);
        const e = err as NodeJS.ErrnoException & { address?: string; port?: number };
        if (e.code === 'EADDRINUSE' || e.code === 'EACCES' || e.code === 'EADDRNOTAVAIL') {
          throw new CliError(`cannot listen on ${e.address ?? config.listen.host}:${e.port ?? config.listen.port}: ${e.code}`, 1);
        }
        throw err;
      }
      process.stderr.write(`warden: listening on ${warden.host}:${warden.port} (databases: ${Object.keys(config.databases).join(', ')})\n`);
      // SIGTERM / SIGINT drain (running statements finish, up to listen.drain_timeout), a second one exits at once.
      let stopping = false;
      const stop = (signal: NodeJS.Signals): void => {
        if (stopping) {
          process.stderr.write(`warden: ${signal} again: exiting at once\n`);
          log.flush();
          process.exit(1);
        }
        stopping = true;
        const drainTimeoutMs = warden.config.listen.drainTimeoutMs ?? DEFAULT_DRAIN_TIMEOUT_MS;
        process.stderr.write(`warden: ${signal}: stopping; running statements may finish within ${drainTimeoutMs / 1000}s (${signal} again exits at once)\n`);
        void warden.close({ drainTimeoutMs, reason: signal }).then(
          () => {
            log.flush();
            process.exit(0);
          },
          (err: Error) => {
            process.stderr.write(`warden: stopping failed: ${err.message}\n`);
            log.flush();
            process.exit(1);
          },
        );
      };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
      onHup = () => {
        if (!stopping) void warden.reload({ trigger: 'SIGHUP' });
      };
    });

  const config = program.command('config').description('inspect the configuration');
  config
    .command('check')
    .description('validate the configuration file: lists every problem (exit status 2 if there is any)')
    .addOption(configOption())
    .option('--json', 'machine-readable output: {ok, source, hash, problems: [{path, message}]}')
    .action((o: { config?: string; json?: boolean }) => {
      let file: string;
      try {
        file = configPath(o.config);
      } catch (err) {
        // A program reading --json gets JSON for a missing file too.
        if (!o.json || !(err instanceof CliError)) throw err;
        out(true, { ok: false, source: path.resolve(o.config ?? DEFAULT_CONFIG), problems: [{ path: '', message: err.message }] }, () => '');
        process.exitCode = 2;
        return;
      }
      const r = checkConfig(file);
      const ok = r.problems.length === 0;
      out(o.json, { ok, source: r.source, ...(r.hash ? { hash: r.hash } : {}), problems: r.problems }, () =>
        ok
          ? `${r.source}: ok (sha256 ${r.hash})`
          : [
              `${r.source}: ${r.problems.length} problem${r.problems.length === 1 ? '' : 's'}`,
              ...r.problems.map((p) => `  ${p.line !== undefined ? `line ${p.line}:${p.column}: ` : ''}${p.path ? `${p.path}: ` : ''}${p.message}`),
            ].join('\n'),
      );
      if (!ok) process.exitCode = 2;
    });

  const databases = program.command('databases').description('the databases clients can name');
  databases
    .command('list')
    .addOption(configOption())
    .option('--json', 'machine-readable output')
    .action((o: { config?: string; json?: boolean }) => {
      const c = loadForInspection(o.config);
      const rows = Object.values(c.databases).map((d) => ({
        name: d.name,
        upstream: d.upstream.redactedUrl,
        environment: d.environment ?? null,
        tls: d.tls,
      }));
      out(o.json, rows, () => rows.map((r) => `${r.name}\t${r.upstream}\t${r.environment ?? '-'}\ttls=${r.tls}`).join('\n'));
    });

  const identities = program.command('identities').alias('identity').description('who may connect');
  identities
    .command('list')
    .addOption(configOption())
    .option('--json', 'machine-readable output')
    .action((o: { config?: string; json?: boolean }) => {
      const c = loadForInspection(o.config);
      const rows = c.identities.map((i) => ({ name: i.name, kind: i.kind, groups: i.groups, auth: i.scram ? 'scram' : 'password' }));
      out(o.json, rows, () => rows.map((r) => `${r.name}\t${r.kind}\t${r.groups.join(',') || '-'}\t${r.auth}`).join('\n'));
    });
  identities
    .command('hash-password')
    .description('print a SCRAM-SHA-256 verifier for `scram:` in the config; the password is read from WARDEN_PASSWORD or the first line of stdin, never from the command line')
    .option('--iterations <n>', 'PBKDF2 iterations', '4096')
    .action(async (o: { iterations: string }) => {
      const iterations = Number(o.iterations);
      if (!Number.isInteger(iterations) || iterations < 4096 || iterations > 10_000_000) {
        throw new CliError('--iterations must be an integer from 4096 to 10000000', 2);
      }
      let password = process.env.WARDEN_PASSWORD;
      if (password === undefined) {
        const chunks: Buffer[] = [];
        for await (const c of process.stdin) chunks.push(c as Buffer);
        password = Buffer.concat(chunks).toString('utf8').split(/\r?\n/)[0];
      }
      if (!password) throw new CliError('no password: set WARDEN_PASSWORD or pipe it on stdin', 2);
      process.stdout.write(formatScramVerifier(makeScramVerifier(password, { iterations })) + '\n');
    });
  identities
    .command('show <name>')
    .addOption(configOption())
    .option('--json', 'machine-readable output')
    .action((name: string, o: { config?: string; json?: boolean }) => {
      const c = loadForInspection(o.config);
      const i = c.identities.find((x) => x.name === name);
      if (!i) throw new CliError(`no identity named "${name}" in ${c.source}`);
      const row = { name: i.name, kind: i.kind, groups: i.groups, auth: i.scram ? 'scram' : 'password' };
      out(o.json, row, () => `name: ${row.name}\nkind: ${row.kind}\ngroups: ${row.groups.join(', ') || '-'}\nauth: ${row.auth}`);
    });

  const policy = program.command('policy').description('dry-run and test the policy');
  policy
    .command('explain <sql>')
    .description('show how a statement is analysed and decided, without running it')
    .addOption(configOption())
    .requiredOption('--as <identity>', 'the identity that would run it')
    .option('--database <name>', 'the database it would run on (default: the only one)')
    .option('--intent <key=value...>', 'session intent, as warden.* startup options would give it')
    .option('--client <address>', 'client address, for rules matching client ranges')
    .option('--search-path <path>', 'the session search_path', '"$user", public')
    .option('--no-catalog', "do not read the functions, triggers and rules the statement runs from the database's catalog")
    .option('--json', 'machine-readable output')
    .action(
      async (
        sql: string,
        o: { config?: string; as: string; database?: string; intent?: string[]; client?: string; searchPath: string; catalog: boolean; json?: boolean },
      ) => {
        const c = loadForInspection(o.config);
        const [{ analyzeSql, initSqlParser, parseSearchPath }, { decide, explainToJSON, formatExplain, policyFromConfig }, { intentOf }, { createCatalogReader }, { createCodeCatalog, mayRunCode }, { silentLogger }] =
          await Promise.all([
            import('../sql/index.js'),
            import('../policy/index.js'),
            import('../intent/sqlcommenter.js'),
            import('../governance/catalog-reader.js'),
            import('../governance/code-catalog.js'),
            import('../log/logger.js'),
          ]);
        const identity = c.identities.find((i) => i.name === o.as);
        if (!identity) throw new CliError(`no identity named "${o.as}" in ${c.source}`);
        const names = Object.keys(c.databases);
        const dbName = o.database ?? (names.length === 1 ? names[0] : undefined);
        if (!dbName) throw new CliError(`--database is required: ${c.source} has several databases (${names.join(', ')})`);
        const db = Object.hasOwn(c.databases, dbName) ? c.databases[dbName] : undefined;
        if (!db) throw new CliError(`no database named "${dbName}" in ${c.source}`);
        const searchPath = parseSearchPath(o.searchPath);
        if (!searchPath) throw new CliError(`--search-path: not a valid search_path: ${o.searchPath}`);
        const settings = new Map<string, string>();
        for (const kv of o.intent ?? []) {
          const eq = kv.indexOf('=');
          if (eq <= 0) throw new CliError(`--intent takes key=value, got "${kv}"`);
          settings.set(kv.slice(0, eq).replace(/^warden\./, '').toLowerCase(), kv.slice(eq + 1));
        }
        await initSqlParser();
        const ctx = { searchPath, user: db.upstream.user };
        let analysis = analyzeSql(sql, ctx);
        // What the statement runs besides its text (function bodies, triggers, rules) is in the
        // database's catalog: read it as the live Warden does, when the upstream is reachable.
        let catalog: { read: boolean; note: string } | undefined;
        if (mayRunCode(analysis)) {
          if (!o.catalog) {
            catalog = { read: false, note: 'not read (--no-catalog): the functions this statement calls and the triggers and rules of the tables it writes are not judged here' };
          } else if (c.unsetVariables?.length) {
            catalog = {
              read: false,
              note: `not read (${c.unsetVariables.join(', ')} not set: the upstream's credentials are unknown here): the functions this statement calls and the triggers and rules of the tables it writes are not judged here`,
            };
          } else {
            const reader = createCatalogReader(silentLogger());
            try {
              await reader.query(db, 'SELECT 1', []);
              const code = createCodeCatalog({ query: (d, q) => reader.query(d, q, []) });
              analysis = await code.resolve(db, analysis, ctx);
              catalog = { read: true, note: `functions, triggers and rules read from ${db.upstream.redactedUrl}` };
            } catch (err) {
              catalog = {
                read: false,
                note: `not read (${(err as Error).message}): the functions this statement calls and the triggers and rules of the tables it writes are not judged here; the running Warden reads them and refuses what it cannot see`,
              };
            } finally {
              await reader.close();
            }
          }
        }
        const intent = intentOf(settings, sql);
        const decision = decide(
          {
            identity,
            session: { database: db.name, environment: db.environment, clientAddress: o.client, intent, now: new Date() },
            analysis,
          },
          policyFromConfig(c),
        );
        out(o.json, { identity: identity.name, database: db.name, intent, ...(catalog ? { catalog } : {}), ...explainToJSON(analysis, decision) }, () =>
          [
            `Identity: ${identity.name} (${identity.kind}${identity.groups.length ? `, groups ${identity.groups.join(', ')}` : ''}) on database ${db.name}${db.environment ? ` (${db.environment})` : ''}`,
            `Intent: ${Object.keys(intent).length ? Object.entries(intent).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(', ') : 'none given'}`,
            ...(catalog ? [`Catalog: ${catalog.note}`] : []),
            formatExplain(analysis, decision, c.limits),
          ].join('\n'),
        );
      },
    );
  policy
    .command('test <file>')
    .description("run a policy test file (identity + SQL -> expected action); exits 1 on any mismatch")
    .addOption(configOption())
    .option('--json', 'machine-readable output')
    .action(async (file: string, o: { config?: string; json?: boolean }) => {
      const c = loadForInspection(o.config);
      let text: string;
      try {
        text = fs.readFileSync(file, 'utf8');
      } catch (err) {
        throw new CliError(`${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, 2);
      }
      const { formatPolicyTestReport, runPolicyTests } = await import('../policy/index.js');
      const report = await runPolicyTests(text, c);
      out(o.json, report, () => formatPolicyTestReport(report));
      if (report.failed > 0) process.exitCode = 1;
    });

  program
    .command('init')
    .description('write a commented starter warden.yaml for your own database')
    .option('-o, --output <file>', 'where to write it', DEFAULT_CONFIG)
    .option('--database <name>', 'the database name clients will use', 'app')
    .option('--upstream <url>', 'the real database (use ${APP_DB_PASSWORD} for the password)', 'postgres://warden_svc:${APP_DB_PASSWORD}@127.0.0.1:5432/app')
    .option('--environment <label>', 'a label rules can match', 'production')
    .option('--force', 'overwrite an existing file')
    .action((o: { output: string; database: string; upstream: string; environment: string; force?: boolean }) => {
      const file = path.resolve(o.output);
      if (fs.existsSync(file) && !o.force) throw new CliError(`${file} exists; pass --force to overwrite it`, 1);
      if (/^postgres(ql)?:\/\/[^:/@]+:(?!\$\{)[^@]+@/.test(o.upstream)) {
        throw new CliError('--upstream: put the password in an environment variable, e.g. postgres://warden_svc:${APP_DB_PASSWORD}@host:5432/db', 2);
      }
      fs.writeFileSync(file, starterConfig({ database: o.database, upstream: o.upstream, environment: o.environment }), { mode: 0o600, flag: o.force ? 'w' : 'wx' });
      process.stdout.write(
        `wrote ${file}\nNext: set APP_DB_PASSWORD (Warden's database password), ALICE_PASSWORD, DANA_PASSWORD and WARDEN_MASK_KEY, then:\n` +
          `  warden config check --config ${o.output}\n  warden start --config ${o.output}\n`,
      );
    });

  registerAuditCommands(program);
  registerApprovalCommands(program);
  registerTokenCommands(program);
  registerSessionCommands(program);
  registerReloadCommand(program);
  registerReportCommands(program);
  registerMcpCommand(program);

  return program;
}

export async function main(argv: string[]): Promise<void> {
  try {
    await buildCli().parseAsync(argv);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`error: ${err.message}\n`);
      process.exit(2);
    }
    if (err instanceof PolicyError) {
      process.stderr.write(`error: ${err.message}\n`);
      process.exit(2);
    }
    if (err instanceof CliError) {
      process.stderr.write(`error: ${err.message}\n`);
      process.exit(err.exitCode);
    }
    process.stderr.write(`error: ${(err as Error).message}\n`);
    process.exit(1);
  }
}

await main(process.argv);
