/** Opens the audit store a config names (`sqlite:`, `postgres://`, `jsonl:`). */
import type { StoreConfig } from '../config/types.js';
import type { AuditStore } from './store.js';

export async function openAuditStore(cfg: StoreConfig, opts: { readOnly?: boolean; durability?: 'fsync' | 'os' } = {}): Promise<AuditStore> {
  switch (cfg.kind) {
    case 'sqlite': {
      const { openSqliteStore } = await import('./store-sqlite.js');
      return openSqliteStore(cfg.location, opts);
    }
    case 'jsonl': {
      const { openJsonlStore } = await import('./store-jsonl.js');
      return openJsonlStore(cfg.location, opts);
    }
    case 'postgres': {
      const { openPostgresStore } = await import('./store-postgres.js');
      return openPostgresStore(cfg.location, opts);
    }
  }
}
