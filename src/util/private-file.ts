/**
 * Files only Warden's own user may read: the audit database (and the -wal and
 * -shm files SQLite gives the database's mode), JSONL records and checkpoints,
 * the checkpoint witness file, the state database. Statement text, identities
 * and approval requests are in them.
 *
 * - A file Warden creates is created mode 0600 (O_CREAT|O_EXCL, so an existing
 *   file is never replaced); a directory Warden creates is mode 0700.
 * - Warden never changes the mode of an existing file or directory (it may be
 *   shared on purpose, e.g. with an auditors' group); it logs a warning naming a
 *   group- or world-writable directory, or an existing file that group or others
 *   may read, once per path and process.
 *
 * Warnings go to the given logger, or else to `process.emitWarning` (stderr).
 */
import { closeSync, mkdirSync, openSync, statSync } from 'node:fs';
import path from 'node:path';

/** What the helpers need of a logger (pino's `warn(obj, msg)`). */
export interface WarnLog {
  warn(obj: object, msg: string): void;
}

/** Mode of files Warden creates. */
export const PRIVATE_FILE_MODE = 0o600;
/** Mode of directories Warden creates. */
export const PRIVATE_DIR_MODE = 0o700;

const warned = new Set<string>();

function warnOnce(key: string, log: WarnLog | undefined, fields: Record<string, string>, msg: string): void {
  if (warned.has(key)) return;
  warned.add(key);
  if (log) log.warn(fields, msg);
  else process.emitWarning(`${msg} (${Object.entries(fields).map(([k, v]) => `${k}=${v}`).join(', ')})`, { code: 'WARDEN_FILE_MODE' });
}

function octal(mode: number): string {
  return `0${(mode & 0o7777).toString(8)}`;
}

export interface PrivateDirOptions {
  /** Create the directory (mode 0700, parents too) when it is missing; default: a missing directory is an error. */
  create?: boolean;
  log?: WarnLog;
  /** What the directory is for, in messages: e.g. `audit store /var/lib/warden/audit.db`. */
  what?: string;
}

/**
 * Makes sure `dir` exists and is a directory. Missing: created mode 0700 with
 * `create`, otherwise an error saying to create it. Existing and writable by
 * group or others: a warning naming it (its mode is left alone). Returns the
 * absolute path.
 */
export function ensurePrivateDir(dir: string, o: PrivateDirOptions = {}): string {
  const abs = path.resolve(dir);
  const prefix = o.what ? `${o.what}: ` : '';
  let st;
  try {
    st = statSync(abs);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`${prefix}cannot read directory ${abs}: ${(err as Error).message}`);
    if (!o.create) throw new Error(`${prefix}directory ${abs} does not exist (create it first, mode 0700)`);
    try {
      mkdirSync(abs, { recursive: true, mode: PRIVATE_DIR_MODE });
    } catch (e) {
      throw new Error(`${prefix}cannot create directory ${abs}: ${(e as Error).message}`);
    }
    return abs;
  }
  if (!st.isDirectory()) throw new Error(`${prefix}${abs} is not a directory`);
  if ((st.mode & 0o022) !== 0) {
    warnOnce(
      `dir:${abs}`,
      o.log,
      { directory: abs, mode: octal(st.mode) },
      `directory ${abs} is writable by ${(st.mode & 0o002) !== 0 ? 'every user' : 'its group'}: others can replace or delete the files Warden keeps there; make it 0700 (chmod 700 ${abs}) or use another directory`,
    );
  }
  return abs;
}

export interface PrivateFileOptions {
  log?: WarnLog;
  /** What the file is, in messages: e.g. `audit database`. */
  what?: string;
  /** Check the directory and warn (default true); false in a second opener of the same file, e.g. a worker thread. */
  warn?: boolean;
}

/**
 * Creates `file` empty with mode 0600 unless it exists (never replacing it);
 * its directory must exist (see {@link ensurePrivateDir}). Warns about a
 * group/world-writable directory and about an existing file group or others may
 * read. Returns the absolute path and whether the file was created.
 */
export function createPrivateFile(file: string, o: PrivateFileOptions = {}): { path: string; created: boolean } {
  const abs = path.resolve(file);
  const what = o.what ?? 'file';
  const quiet = o.warn === false;
  ensurePrivateDir(path.dirname(abs), { log: quiet ? { warn: () => undefined } : o.log, what: `${what} ${abs}` });
  try {
    closeSync(openSync(abs, 'wx', PRIVATE_FILE_MODE));
    return { path: abs, created: true };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new Error(`${what} ${abs}: cannot create the file: ${(err as Error).message}`);
  }
  if (!quiet) checkPrivateFile(abs, o);
  return { path: abs, created: false };
}

/** Warns (once) when an existing file may be read or written by group or others. */
export function checkPrivateFile(file: string, o: { log?: WarnLog; what?: string } = {}): void {
  const abs = path.resolve(file);
  let mode: number;
  try {
    mode = statSync(abs).mode;
  } catch {
    return;
  }
  if ((mode & 0o077) === 0) return;
  warnOnce(
    `file:${abs}`,
    o.log,
    { file: abs, mode: octal(mode) },
    `${o.what ?? 'file'} ${abs} is readable or writable by group or others (mode ${octal(mode)}); Warden creates it 0600: chmod 600 ${abs}${/sqlite|database/.test(o.what ?? '') ? ` ${abs}-wal ${abs}-shm` : ''}`,
  );
}
