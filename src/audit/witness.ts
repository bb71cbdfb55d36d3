/**
 * Checkpoint witnesses: every checkpoint Warden signs is also written to a
 * second, independent place (`audit.witness`), so that cutting the tail of
 * the log together with the checkpoints stored beside it is still detected:
 * `warden audit verify` reads the witnesses it can (file, postgres) and
 * reports `truncated` when a witnessed checkpoint is beyond the chain's end.
 *
 * | witness         | written                                                      | verify reads it |
 * |-----------------|--------------------------------------------------------------|-----------------|
 * | `file:PATH`     | one JSON line per checkpoint, appended and fdatasync'd, 0600 | yes             |
 * | `postgres://…`  | a row in `warden_audit.witness_checkpoints` (insert only)    | yes             |
 * | `stdout`        | `{"checkpoint":{…}}` on a line                               | no              |
 * | webhook URL     | POST `{"checkpoints":[{…}]}`, retried twice                  | no              |
 *
 * A file line is a checkpoint exactly as `warden audit checkpoints` prints it,
 * so the file also works with `verify --checkpoints FILE`.
 *
 * Publishing never blocks statements and never throws: each failure is logged
 * (`audit witness <where>: checkpoint <instance>#<seq> not written: <why>`) and
 * counted in {@link WitnessStats}. A missed checkpoint is covered by the next
 * one: a checkpoint at seq N pins every record up to N.
 */
import { open, readFile, type FileHandle } from 'node:fs/promises';
import pg from 'pg';
import type { AuditWitnessConfig } from '../config/types.js';
import type { Logger } from '../log/logger.js';
import { parsePgUrl, type PgUrlInfo } from '../util/pg-url.js';
import { createPrivateFile, type WarnLog } from '../util/private-file.js';
import type { Checkpoint } from './chain.js';
import type { AuditStore } from './store.js';

/** One place checkpoints are written to. */
export interface CheckpointWitness {
  /** `file:/abs/path`, `postgres://user@host/db` (no password), `stdout`, `webhook https://host/...` (no credentials). */
  readonly description: string;
  /** Whether {@link read} can give the checkpoints back (file, postgres). */
  readonly readable: boolean;
  /** Durably writes one checkpoint; rejects on failure. */
  publish(cp: Checkpoint): Promise<void>;
  /** The checkpoints written so far (of one instance), in the order written; rejects when not readable. */
  read(instance?: string): Promise<Checkpoint[]>;
  close(): Promise<void>;
}

export interface WitnessStats {
  /** Checkpoint writes that succeeded (one per witness). */
  published: number;
  /** Checkpoint writes that failed (one per witness). */
  failures: number;
  lastError?: string;
}

/** Witnesses reached by {@link witnessesOf} from the store whose checkpoints they witness. */
const byStore = new WeakMap<AuditStore, WitnessSet>();

/**
 * All configured witnesses as one: `publish` writes to each in parallel and
 * never rejects (failures are logged and counted).
 */
export class WitnessSet {
  readonly stats: WitnessStats = { published: 0, failures: 0 };
  constructor(
    readonly witnesses: readonly CheckpointWitness[],
    private readonly log?: Pick<Logger, 'error' | 'warn'>,
  ) {}

  /** The witnesses verification can read. */
  get readable(): CheckpointWitness[] {
    return this.witnesses.filter((w) => w.readable);
  }

  /** instance → `seq:hash` of the last checkpoint published. */
  readonly #last = new Map<string, string>();

  async publish(cp: Checkpoint): Promise<void> {
    // The same head signed twice (two checkpoint() calls racing) is witnessed once.
    const id = `${cp.seq}:${cp.hash}`;
    if (this.#last.get(cp.instance) === id) return;
    this.#last.set(cp.instance, id);
    await Promise.all(
      this.witnesses.map(async (w) => {
        try {
          await w.publish(cp);
          this.stats.published++;
        } catch (err) {
          const reason = (err as Error).message;
          this.stats.failures++;
          this.stats.lastError = `${w.description}: ${reason}`;
          const msg = `audit witness ${w.description}: checkpoint ${cp.instance}#${cp.seq} not written: ${reason}`;
          if (this.log) this.log.error({ witness: w.description, instance: cp.instance, seq: cp.seq, reason }, msg);
          else process.stderr.write(`${msg}\n`);
        }
      }),
    );
  }

  async close(): Promise<void> {
    await Promise.all(this.witnesses.map((w) => w.close().catch(() => undefined)));
  }
}

/**
 * Opens the configured witnesses for writing (Warden). A file witness's file is
 * created (0600) now, so a missing directory fails the start; a PostgreSQL
 * witness connects on its first checkpoint. With `store`, the set is found
 * again by {@link witnessesOf}(store) (the admin API's verify).
 */
export function createWitnesses(cfg: readonly AuditWitnessConfig[], o: { log?: Logger; store?: AuditStore } = {}): WitnessSet {
  const list: CheckpointWitness[] = [];
  try {
    for (const c of cfg) list.push(openWitness(c, { log: o.log }));
  } catch (err) {
    for (const w of list) void w.close();
    throw err;
  }
  const set = new WitnessSet(list, o.log);
  if (o.store) byStore.set(o.store, set);
  return set;
}

/** The witnesses of the log writing to `store` (see {@link createWitnesses}). */
export function witnessesOf(store: AuditStore): WitnessSet | undefined {
  return byStore.get(store);
}

/** One witness. `readOnly`: for verification, nothing is created or written. */
export function openWitness(c: AuditWitnessConfig, o: { log?: WarnLog; readOnly?: boolean } = {}): CheckpointWitness {
  switch (c.kind) {
    case 'file':
      return new FileWitness(c.path, o);
    case 'postgres':
      return new PostgresWitness(c.url, o.readOnly === true);
    case 'stdout':
      return new StdoutWitness();
    case 'webhook':
      return new WebhookWitness(c.url);
  }
}

/**
 * Reads the checkpoints of every readable witness, for verification. A witness
 * that cannot be read is an error for it (verification must not pass quietly
 * because the witness is gone).
 */
export async function readWitnesses(
  witnesses: readonly CheckpointWitness[],
  instance?: string,
): Promise<{ description: string; checkpoints: Checkpoint[]; error?: string }[]> {
  return Promise.all(
    witnesses
      .filter((w) => w.readable)
      .map(async (w) => {
        try {
          return { description: w.description, checkpoints: await w.read(instance) };
        } catch (err) {
          return { description: w.description, checkpoints: [], error: (err as Error).message };
        }
      }),
  );
}

/** The fields of a checkpoint, in a fixed order (what `warden audit checkpoints` prints). */
function plain(cp: Checkpoint): Checkpoint {
  const { instance, seq, hash, ts, signature, keyId } = cp;
  return { instance, seq, hash, ts, signature, keyId };
}

class FileWitness implements CheckpointWitness {
  readonly description: string;
  readonly readable = true;
  #handle: FileHandle | null = null;
  #queue: Promise<unknown> = Promise.resolve();
  /** The file did not end with a newline when opened (a torn write): start with one. */
  #needNewline: boolean | undefined;

  constructor(
    private readonly file: string,
    o: { log?: WarnLog; readOnly?: boolean },
  ) {
    this.description = `file:${file}`;
    if (!o.readOnly) createPrivateFile(file, { log: o.log, what: 'audit witness file' });
  }

  publish(cp: Checkpoint): Promise<void> {
    const run = this.#queue.then(async () => {
      if (!this.#handle) {
        this.#handle = await open(this.file, 'a', 0o600);
        const { size } = await this.#handle.stat();
        if (size > 0) {
          const last = Buffer.alloc(1);
          const r = await open(this.file, 'r');
          try {
            await r.read(last, 0, 1, size - 1);
          } finally {
            await r.close();
          }
          this.#needNewline = last[0] !== 0x0a;
        }
      }
      const line = `${this.#needNewline ? '\n' : ''}${JSON.stringify(plain(cp))}\n`;
      const buf = Buffer.from(line, 'utf8');
      let off = 0;
      while (off < buf.length) off += (await this.#handle.write(buf, off, buf.length - off)).bytesWritten;
      this.#needNewline = false;
      await this.#handle.datasync();
    });
    this.#queue = run.catch(() => undefined);
    return run;
  }

  async read(instance?: string): Promise<Checkpoint[]> {
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new Error(code === 'ENOENT' ? `${this.file} does not exist (deleted? Warden creates it when it starts)` : `cannot read ${this.file}: ${code ?? (err as Error).message}`);
    }
    const out: Checkpoint[] = [];
    for (const line of text.split('\n')) {
      if (line.trim() === '') continue;
      let v: unknown;
      try {
        v = JSON.parse(line);
      } catch {
        continue; // a torn write (crash mid-line): not a checkpoint
      }
      // Anything else that parses goes to verification, which flags a malformed checkpoint.
      const cp = v as Checkpoint;
      if (instance === undefined || (v !== null && typeof v === 'object' && cp.instance === instance)) out.push(cp);
    }
    return out;
  }

  async close(): Promise<void> {
    await this.#queue;
    const h = this.#handle;
    this.#handle = null;
    await h?.close();
  }
}

const PG_TABLE = 'warden_audit.witness_checkpoints';

/**
 * A table `warden_audit.witness_checkpoints` (created when missing; Warden only
 * ever inserts into it, so its role may have INSERT and SELECT only).
 */
class PostgresWitness implements CheckpointWitness {
  readonly description: string;
  readonly readable = true;
  readonly #conn: PgUrlInfo;
  readonly #pool: pg.Pool;
  #ready: Promise<void> | null = null;

  constructor(
    url: string,
    private readonly readOnly: boolean,
  ) {
    this.#conn = parsePgUrl(url, 'audit witness');
    this.description = this.#conn.description;
    this.#pool = new pg.Pool({ connectionString: url, max: 1, connectionTimeoutMillis: 5_000, query_timeout: 10_000, idleTimeoutMillis: 30_000 });
    this.#pool.on('error', () => undefined);
  }

  #init(): Promise<void> {
    this.#ready ??= (async () => {
      const r = await this.#pool.query<{ t: string | null }>('SELECT to_regclass($1)::text AS t', [PG_TABLE]);
      if (r.rows[0]?.t != null || this.readOnly) return;
      await this.#pool.query(`CREATE SCHEMA IF NOT EXISTS warden_audit;
CREATE TABLE IF NOT EXISTS ${PG_TABLE} (
  instance text COLLATE "C" NOT NULL,
  seq bigint NOT NULL,
  hash text NOT NULL,
  ts text NOT NULL,
  signature text NOT NULL,
  key_id text NOT NULL,
  received_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (instance, seq, hash)
)`);
    })().catch((err: unknown) => {
      this.#ready = null;
      throw err;
    });
    return this.#ready;
  }

  async publish(cp: Checkpoint): Promise<void> {
    try {
      await this.#init();
      await this.#pool.query(
        `INSERT INTO ${PG_TABLE} (instance, seq, hash, ts, signature, key_id) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING`,
        [cp.instance, cp.seq, cp.hash, cp.ts, cp.signature, cp.keyId],
      );
    } catch (err) {
      throw this.#conn.error('insert failed', err);
    }
  }

  async read(instance?: string): Promise<Checkpoint[]> {
    try {
      await this.#init();
      const rows = (
        await this.#pool.query<{ instance: string; seq: string; hash: string; ts: string; signature: string; key_id: string }>(
          `SELECT instance, seq, hash, ts, signature, key_id FROM ${PG_TABLE}${instance === undefined ? '' : ' WHERE instance = $1'} ORDER BY instance, seq`,
          instance === undefined ? [] : [instance],
        )
      ).rows;
      return rows.map((r) => ({ instance: r.instance, seq: Number(r.seq), hash: r.hash, ts: r.ts, signature: r.signature, keyId: r.key_id }));
    } catch (err) {
      throw this.#conn.error('read failed', err);
    }
  }

  async close(): Promise<void> {
    await this.#pool.end().catch(() => undefined);
  }
}

class StdoutWitness implements CheckpointWitness {
  readonly description = 'stdout';
  readonly readable = false;
  publish(cp: Checkpoint): Promise<void> {
    return new Promise((resolve, reject) => {
      process.stdout.write(`${JSON.stringify({ checkpoint: plain(cp) })}\n`, (err) => (err ? reject(err) : resolve()));
    });
  }
  read(): Promise<Checkpoint[]> {
    return Promise.reject(new Error('stdout cannot be read back'));
  }
  async close(): Promise<void> {}
}

/** POST `{ "checkpoints": [cp] }`; 3 attempts (0.5 s, 2 s apart), 5 s each. */
class WebhookWitness implements CheckpointWitness {
  readonly description: string;
  readonly readable = false;
  constructor(private readonly url: string) {
    this.description = `webhook ${redactUrl(url)}`;
  }
  async publish(cp: Checkpoint): Promise<void> {
    let last: Error = new Error('not sent');
    for (const wait of [0, 500, 2_000]) {
      if (wait) await new Promise((r) => setTimeout(r, wait).unref());
      try {
        const res = await fetch(this.url, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ checkpoints: [plain(cp)] }),
          signal: AbortSignal.timeout(5_000),
        });
        await res.body?.cancel().catch(() => undefined);
        if (res.ok) return;
        last = new Error(`HTTP ${res.status}`);
        if (res.status >= 400 && res.status < 500 && res.status !== 408 && res.status !== 429) break;
      } catch (err) {
        last = err as Error;
      }
    }
    throw last;
  }
  read(): Promise<Checkpoint[]> {
    return Promise.reject(new Error('a webhook cannot be read back'));
  }
  async close(): Promise<void> {}
}

function redactUrl(u: string): string {
  try {
    const x = new URL(u);
    if (x.username) x.username = '***';
    if (x.password) x.password = '***';
    x.search = '';
    return x.toString();
  } catch {
    return '<url>';
  }
}

/** What verification read from one witness. */
export interface WitnessReading {
  description: string;
  /** Checkpoints used for the verification. */
  checkpoints: number;
  /** Checkpoints of instances this verification does not cover (another Warden's store). */
  otherInstances: number;
  /** Why the witness could not be read (verification then fails). */
  error?: string;
}

/**
 * The witnessed checkpoints to verify `store` against: with `instance`, that
 * instance's; otherwise those of the instances that have records in the store
 * and of `ownInstance` (the config's own chain, so a chain deleted whole is
 * still found). Checkpoints of other instances (a witness shared by Wardens
 * with their own stores) are counted, not used.
 */
export async function witnessedCheckpoints(
  store: AuditStore,
  witnesses: readonly CheckpointWitness[],
  o: { instance?: string; ownInstance?: string } = {},
): Promise<{ checkpoints: Checkpoint[]; readings: WitnessReading[] }> {
  const read = await readWitnesses(witnesses, o.instance);
  const covered = o.instance !== undefined ? new Set([o.instance]) : new Set([...(await store.instances()), ...(o.ownInstance ? [o.ownInstance] : [])]);
  const checkpoints: Checkpoint[] = [];
  const readings: WitnessReading[] = read.map((r) => {
    // A malformed entry (no instance) is kept: verification reports it.
    const mine = r.checkpoints.filter((c) => c === null || typeof c !== 'object' || typeof c.instance !== 'string' || covered.has(c.instance));
    checkpoints.push(...mine);
    return { description: r.description, checkpoints: mine.length, otherInstances: r.checkpoints.length - mine.length, ...(r.error !== undefined ? { error: r.error } : {}) };
  });
  return { checkpoints, readings };
}
