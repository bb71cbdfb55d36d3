/**
 * Opens the state store a configuration names: `sqlite:PATH` (one instance,
 * or several on one host) or `postgres://...` (several instances). JSONL is
 * an audit format only: the state store needs transactions.
 */
import { openPostgresState } from './postgres.js';
import { openSqliteState } from './sqlite.js';
import type { StateStore } from './types.js';

export interface StateStoreLocation {
  kind: 'sqlite' | 'postgres' | 'jsonl';
  /** sqlite: the file path (or `:memory:`); postgres: the URL. */
  location: string;
}

export async function openStateStore(cfg: StateStoreLocation): Promise<StateStore> {
  switch (cfg.kind) {
    case 'sqlite':
      return openSqliteState(cfg.location);
    case 'postgres':
      return openPostgresState(cfg.location);
    case 'jsonl':
      throw new Error('state store: jsonl is not supported (the state store needs sqlite:PATH or postgres://...); jsonl is for the audit log only');
    default: {
      const kind: never = cfg.kind;
      throw new Error(`state store: unknown kind ${JSON.stringify(kind)} (expected sqlite or postgres)`);
    }
  }
}
