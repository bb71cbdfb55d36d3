/**
 * `warden audit ...`: verify, tail, search, export, checkpoints, keygen.
 *
 * Every command reads the store named by the config's `audit.store` (or
 * `--store`, so a copy can be checked offline without a config) and opens it
 * read-only: nothing here can change the log.
 */
import crypto, { type KeyObject } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Command, Option } from 'commander';
import { parseStore, parseDuration, parseWitness } from '../config/schema.js';
import type { AuditWitnessConfig, StoreConfig } from '../config/types.js';
import { openAuditStore } from '../audit/open.js';
import type { AuditQuery, AuditStore } from '../audit/store.js';
import { keyIdOf, type AuditRecord, type Checkpoint } from '../audit/chain.js';
import { verifyStore } from '../audit/verify-store.js';
import { defaultInstanceName } from '../audit/log.js';
import { openWitness, witnessedCheckpoints, type CheckpointWitness, type WitnessReading } from '../audit/witness.js';
import { csvHeader, formatRecordLine, toCsvRow } from '../audit/format.js';
import { CliError, configOption, load, out } from './common.js';

interface StoreOptions {
  config?: string;
  store?: string;
}

interface StoreSource {
  store: StoreConfig;
  signingKey?: string;
  /** The config's audit.witness entries. */
  witness?: AuditWitnessConfig[];
  /** The config's own chain name (audit.instance or the default). */
  instance?: string;
}

function storeConfig(o: StoreOptions): StoreSource {
  if (o.store) {
    const r = parseStore(o.store, true);
    if (!r.ok) throw new CliError(`--store: ${r.error}`, 2);
    const location = r.value.kind === 'postgres' ? r.value.location : path.resolve(r.value.location);
    return { store: { kind: r.value.kind, location } };
  }
  const config = load(o.config);
  if (!config.audit) throw new CliError(`${config.source}: audit: not configured (no audit log to read); pass --store to read one directly`, 2);
  return {
    store: config.audit.store,
    signingKey: config.audit.signingKey,
    witness: config.audit.witness,
    instance: config.audit.instance ?? defaultInstanceName(config.listen.port),
  };
}

async function openStore(o: StoreOptions): Promise<Omit<StoreSource, 'store'> & { store: AuditStore }> {
  const c = storeConfig(o);
  if (c.store.kind !== 'postgres' && !fs.existsSync(c.store.location)) throw new CliError(`${c.store.kind}:${c.store.location}: no audit log there`, 1);
  try {
    return { ...c, store: await openAuditStore(c.store, { readOnly: true }) };
  } catch (err) {
    throw new CliError((err as Error).message, 1);
  }
}

/** `--since 1h` (that long ago) or an ISO-8601 time. */
export function parseTime(v: string, flag: string): string {
  const d = parseDuration(v);
  if (d.ok && !/^\d{4}-/.test(v)) return new Date(Date.now() - d.value).toISOString();
  const t = new Date(v);
  if (Number.isNaN(t.getTime())) throw new CliError(`${flag}: "${v}" is neither a duration (30m, 2h, 7d) nor an ISO-8601 time`, 2);
  return t.toISOString();
}

const storeOption = (): Option => new Option('--store <store>', 'read this store instead of the config\'s audit.store (sqlite:PATH, jsonl:PATH, postgres://...)');

/** The Ed25519 public key in a PEM file (a private key's public half too); CliError 2 otherwise. */
export function publicKeyFrom(file: string): KeyObject {
  let pem: Buffer;
  try {
    pem = fs.readFileSync(file);
  } catch (err) {
    throw new CliError(`cannot read key ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, 2);
  }
  try {
    const text = pem.toString('utf8');
    const key = text.includes('PRIVATE KEY') ? crypto.createPublicKey(crypto.createPrivateKey(pem)) : crypto.createPublicKey(pem);
    if (key.asymmetricKeyType !== 'ed25519') throw new Error('not Ed25519');
    return key;
  } catch {
    throw new CliError(`${file}: not an Ed25519 PEM key`, 2);
  }
}

/**
 * The witnesses verify reads: `--witness` entries (file:PATH or postgres://...),
 * else the config's readable audit.witness entries; none with `--no-witness`.
 */
function verifyWitnesses(flag: string[] | boolean | undefined, configured: AuditWitnessConfig[] | undefined): CheckpointWitness[] {
  if (flag === false) return [];
  if (Array.isArray(flag)) {
    return flag.map((spec) => {
      const r = parseWitness(spec);
      if (!r.ok) throw new CliError(`--witness: ${r.error}`, 2);
      if (r.value.kind === 'stdout' || r.value.kind === 'webhook') throw new CliError(`--witness: ${spec}: only file:PATH and postgres://... witnesses can be read back`, 2);
      const c: AuditWitnessConfig = r.value.kind === 'file' ? { kind: 'file', path: path.resolve(r.value.location) } : r.value;
      return openWitness(c, { readOnly: true });
    });
  }
  return (configured ?? []).filter((c) => c.kind === 'file' || c.kind === 'postgres').map((c) => openWitness(c, { readOnly: true }));
}

function readCheckpointFile(file: string): Checkpoint[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new CliError(`cannot read checkpoints ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, 2);
  }
  const trimmed = text.trim();
  if (trimmed.startsWith('[')) return JSON.parse(trimmed) as Checkpoint[];
  return trimmed
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l, i) => {
      try {
        return JSON.parse(l) as Checkpoint;
      } catch {
        throw new CliError(`${file}: line ${i + 1} is not JSON`, 2);
      }
    });
}

export function registerAuditCommands(program: Command): void {
  const audit = program.command('audit').description('read and verify the tamper-evident audit log');

  audit
    .command('verify')
    .description('check every hash link, signed checkpoint and the search index; exits 1 when the log was tampered with')
    .addOption(configOption())
    .addOption(storeOption())
    .option('--instance <name>', 'only this instance\'s chain')
    .option('--checkpoints <file>', 'signed checkpoints exported earlier (JSON lines or a JSON array)')
    .option('--public-key <file>', 'Ed25519 public key (PEM) that signed the checkpoints (default: derived from audit.signing_key)')
    .option('--witness <witness...>', 'read checkpoints from this witness (file:PATH or postgres://...) instead of the config\'s audit.witness')
    .option('--no-witness', 'do not read the config\'s audit.witness')
    .option('--json', 'machine-readable output')
    .action(async (o: StoreOptions & { instance?: string; checkpoints?: string; publicKey?: string; witness?: string[] | boolean; json?: boolean }) => {
      const src = await openStore(o);
      const { store, signingKey } = src;
      let witnesses: CheckpointWitness[] = [];
      try {
        witnesses = verifyWitnesses(o.witness, src.witness);
        const keyFile = o.publicKey ?? signingKey;
        const publicKey = keyFile ? publicKeyFrom(keyFile) : undefined;
        const checkpoints = o.checkpoints ? readCheckpointFile(o.checkpoints) : [];
        let readings: WitnessReading[] = [];
        if (witnesses.length > 0) {
          const w = await witnessedCheckpoints(store, witnesses, { instance: o.instance, ownInstance: src.instance });
          checkpoints.push(...w.checkpoints);
          readings = w.readings;
        }
        const results = await verifyStore(store, { instance: o.instance, checkpoints, publicKey });
        // A witness that cannot be read fails verification: the cut it would show must not pass unseen.
        const ok = results.every((r) => r.report.ok) && readings.every((r) => r.error === undefined);
        out(o.json, { ok, store: store.description, keyId: publicKey ? keyIdOf(publicKey) : null, witnesses: readings, instances: results }, () => {
          const lines: string[] = [];
          for (const r of readings) {
            if (r.error !== undefined) lines.push(`FAIL witness ${r.description}: ${r.error} (--no-witness skips it)`);
            else lines.push(`     witness ${r.description}: ${r.checkpoints} checkpoint(s)${r.otherInstances ? `, ${r.otherInstances} of other instances not in this store (--instance NAME checks one)` : ''}`);
          }
          if (results.length === 0) lines.push(`${store.description}: no records`);
          for (const r of results) {
            const head = `${r.instance}: ${r.report.records} records, last seq ${r.report.lastSeq}, ${r.checkpoints} checkpoint(s)${publicKey ? '' : ' (signatures not checked: no key)'}`;
            lines.push(`${r.report.ok ? 'OK  ' : 'FAIL'} ${head}${r.startAfter ? ` (starts after pruned record ${r.startAfter.seq})` : ''}`);
            if (r.index) lines.push(`     search index: ${r.index.records} record(s) and ${r.index.terms} term(s) compared with the hashed data`);
            for (const p of r.report.problems) lines.push(`     ${p.kind} at seq ${p.seq ?? '?'} (position ${p.index}): ${p.message}`);
          }
          lines.push(ok ? 'audit log verified: no tampering found' : 'audit log FAILED verification');
          return lines.join('\n');
        });
        if (!ok) process.exitCode = 1;
      } finally {
        await Promise.all(witnesses.map((w) => w.close()));
        await store.close();
      }
    });

  const filters = (c: Command): Command =>
    c
      .option('--identity <name>', 'records of this identity')
      .option('--table <name>', 'statements that read or changed this table (schema.table or table)')
      .option('--action <action>', 'a decision (allow, deny, mask, approve), statement class (read, write, ddl, ...) or kind (select, update, ...)')
      .option('--type <type...>', 'event types (statement.begin, login.failed, or a prefix like statement.)')
      .option('--session <id>', 'one session')
      .option('--instance <name>', 'one instance\'s chain')
      .option('--since <time>', 'from this time (ISO-8601) or this long ago (30m, 2h, 7d)')
      .option('--until <time>', 'before this time (ISO-8601) or this long ago');

  const queryOf = (o: Record<string, unknown>): AuditQuery => {
    const q: AuditQuery = {};
    if (typeof o.identity === 'string') q.identity = o.identity;
    if (typeof o.table === 'string') q.table = o.table;
    if (typeof o.action === 'string') q.action = o.action;
    if (Array.isArray(o.type)) q.types = o.type as string[];
    if (typeof o.session === 'string') q.session = o.session;
    if (typeof o.instance === 'string') q.instance = o.instance;
    if (typeof o.since === 'string') q.since = parseTime(o.since, '--since');
    if (typeof o.until === 'string') q.until = parseTime(o.until, '--until');
    return q;
  };

  const limitOf = (v: string | undefined, dflt: number): number => {
    const n = v === undefined ? dflt : Number(v);
    if (!Number.isSafeInteger(n) || n < 0) throw new CliError(`--limit: "${v}" is not a non-negative integer`, 2);
    return n;
  };

  filters(
    audit
      .command('search')
      .description('find records (newest last)')
      .addOption(configOption())
      .addOption(storeOption())
      .option('--limit <n>', 'at most this many records (the newest)', '100')
      .option('--json', 'JSON lines, one record each'),
  ).action(async (o: StoreOptions & Record<string, unknown>) => {
    const q = queryOf(o);
    const { store } = await openStore(o);
    try {
      const found: AuditRecord[] = [];
      for await (const r of store.query({ ...q, descending: true, limit: limitOf(o.limit as string | undefined, 100) })) found.push(r);
      found.reverse();
      for (const r of found) process.stdout.write(`${o.json ? JSON.stringify(r) : formatRecordLine(r)}\n`);
      if (!o.json) process.stderr.write(`${found.length} record(s)\n`);
    } finally {
      await store.close();
    }
  });

  filters(
    audit
      .command('tail')
      .description('the latest records; -f keeps printing new ones')
      .addOption(configOption())
      .addOption(storeOption())
      .option('-n, --lines <n>', 'how many of the latest records to show first (0: none; with -f, only records written from now on)', '20')
      .option('-f, --follow', 'wait for new records')
      .option('--json', 'JSON lines, one record each'),
  ).action(async (o: StoreOptions & Record<string, unknown>) => {
    const q = queryOf(o);
    const print = (r: AuditRecord): void => void process.stdout.write(`${o.json ? JSON.stringify(r) : formatRecordLine(r)}\n`);
    const { store } = await openStore(o);
    try {
      const lines = limitOf(o.lines as string | undefined, 20);
      // Where each chain ends now: -f prints what comes after it (and -n N the N records up to it).
      const last = new Map<string, number>();
      if (o.follow) {
        for (const instance of await store.instances()) {
          const head = await store.head(instance);
          if (head) last.set(instance, head.seq);
        }
      }
      const upToNow = (r: AuditRecord): boolean => !o.follow || r.seq <= (last.get(r.instance) ?? 0);
      const first: AuditRecord[] = [];
      if (lines > 0) for await (const r of store.query({ ...q, descending: true, limit: lines })) if (upToNow(r)) first.push(r);
      first.reverse().forEach(print);
      if (!o.follow) return;
      let stop = false;
      const onSignal = (): void => void (stop = true);
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      while (!stop) {
        await new Promise((r) => setTimeout(r, 300));
        for (const instance of await store.instances()) {
          if (q.instance !== undefined && q.instance !== instance) continue;
          // A chain that had no records when the tail started: all of it is new.
          const from = (last.get(instance) ?? 0) + 1;
          for await (const r of store.query({ ...q, instance, fromSeq: from })) {
            print(r);
            last.set(instance, Math.max(last.get(instance) ?? 0, r.seq));
          }
        }
      }
    } finally {
      await store.close();
    }
  });

  filters(
    audit
      .command('export')
      .description('write records as JSON lines or CSV (oldest first), e.g. for an archive or a report')
      .addOption(configOption())
      .addOption(storeOption())
      .option('--from <time>', 'from this time (ISO-8601) or this long ago')
      .option('--to <time>', 'before this time (ISO-8601) or this long ago')
      .addOption(new Option('--format <format>', 'output format').choices(['jsonl', 'csv']).default('jsonl'))
      .option('-o, --output <file>', 'write to this file instead of stdout'),
  ).action(async (o: StoreOptions & Record<string, unknown>) => {
    const q = queryOf(o);
    if (typeof o.from === 'string') q.since = parseTime(o.from, '--from');
    if (typeof o.to === 'string') q.until = parseTime(o.to, '--to');
    const { store } = await openStore(o);
    const dest = typeof o.output === 'string' ? fs.createWriteStream(o.output, { mode: 0o600 }) : process.stdout;
    const write = (line: string): Promise<void> =>
      new Promise((resolve) => {
        if (dest.write(`${line}\n`)) resolve();
        else dest.once('drain', () => resolve());
      });
    let n = 0;
    try {
      if (o.format === 'csv') await write(csvHeader());
      for await (const r of store.query(q)) {
        await write(o.format === 'csv' ? toCsvRow(r) : JSON.stringify(r));
        n++;
      }
    } finally {
      await store.close();
      if (dest !== process.stdout) await new Promise<void>((r) => (dest as fs.WriteStream).end(() => r()));
    }
    process.stderr.write(`${n} record(s) exported\n`);
  });

  audit
    .command('checkpoints')
    .description('print the signed checkpoints as JSON lines, to keep elsewhere (verify --checkpoints FILE)')
    .addOption(configOption())
    .addOption(storeOption())
    .option('--instance <name>', 'one instance\'s checkpoints')
    .action(async (o: StoreOptions & { instance?: string }) => {
      const { store } = await openStore(o);
      try {
        for (const cp of await store.checkpoints(o.instance)) process.stdout.write(`${JSON.stringify(cp)}\n`);
      } finally {
        await store.close();
      }
    });

  audit
    .command('keygen')
    .description('create an Ed25519 key pair for signing checkpoints (audit.signing_key)')
    .requiredOption('--out <file>', 'where to write the private key (PEM, mode 0600); the public key goes to <file>.pub')
    .action((o: { out: string }) => {
      const file = path.resolve(o.out);
      if (fs.existsSync(file)) throw new CliError(`${file} exists; refusing to overwrite a signing key`, 1);
      const { privateKey, publicKey } = crypto.generateKeyPairSync('ed25519');
      fs.writeFileSync(file, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600, flag: 'wx' });
      fs.writeFileSync(`${file}.pub`, publicKey.export({ type: 'spki', format: 'pem' }), { flag: 'wx' });
      process.stdout.write(`private key: ${file}\npublic key:  ${file}.pub (key id ${keyIdOf(publicKey)})\n`);
    });
}
