/**
 * The process's open-file limit, raised to its hard limit when Warden starts,
 * and the connection cap derived from it: every client connection costs Warden
 * descriptors (the client's socket, the upstream's, and the native relay's
 * duplicates of both), and a proxy that runs out of descriptors can no longer
 * even refuse a client clearly. Linux: /proc/self/limits and util-linux's
 * prlimit (Node cannot call setrlimit); elsewhere the limit is unknown.
 */
import { readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';

export interface FileLimit {
  soft: number;
  hard: number;
}

/** Descriptors kept back for everything that is not a client connection (audit store, catalog and state connections, logs, admin). */
export const RESERVED_FDS = 128;
/** Descriptors one client connection may use at worst. */
export const FDS_PER_CONNECTION = 4;
/** The cap when the limit cannot be read. */
export const FALLBACK_MAX_CONNECTIONS = 1000;

function parse(v: string): number {
  return v === 'unlimited' ? Number.POSITIVE_INFINITY : Number(v);
}

/** The current open-file limit, or null when it cannot be read. */
export function readFileLimit(): FileLimit | null {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('Max open files'));
    const m = line ? /^Max open files\s+(\S+)\s+(\S+)/.exec(line) : null;
    if (!m) return null;
    const soft = parse(m[1]!);
    const hard = parse(m[2]!);
    return Number.isNaN(soft) || Number.isNaN(hard) ? null : { soft, hard };
  } catch {
    return null;
  }
}

/** Raise the soft open-file limit to the hard one (like PostgreSQL's and PgBouncer's start); returns the limit in force. */
export function raiseFileLimit(): FileLimit | null {
  const before = readFileLimit();
  if (!before || before.soft >= before.hard) return before;
  const hard = Number.isFinite(before.hard) ? String(before.hard) : 'unlimited';
  spawnSync('prlimit', ['--pid', String(process.pid), `--nofile=${hard}:${hard}`], { stdio: 'ignore', timeout: 2_000 });
  return readFileLimit() ?? before;
}

/** The default `listen.max_connections` for a limit. */
export function defaultMaxConnections(limit: FileLimit | null): number {
  if (!limit || !Number.isFinite(limit.soft)) return FALLBACK_MAX_CONNECTIONS;
  return Math.max(1, Math.floor((limit.soft - RESERVED_FDS) / FDS_PER_CONNECTION));
}
