/**
 * Operator actions and the log's own life: identity suspensions and resumptions,
 * sessions killed, configuration loads and reloads (with the file's hash),
 * Warden starts and stops, and what the log says about itself (records lost
 * while the store failed, retention pruning).
 */
import type { AuditRecord } from '../audit/chain.js';
import { controlsOf } from './controls.js';
import { num, ref, str, strings, type Data } from './facts.js';
import { CappedList, type Aggregator, type Listing, type SectionBase } from './types.js';

export interface SuspensionEvent {
  ts: string;
  record: string;
  event: 'suspended' | 'resumed';
  identity: string;
  by: string;
  reason: string;
  sessionsEnded: number;
}

export interface KillEvent {
  ts: string;
  record: string;
  session: string;
  identity: string;
  database: string;
  by: string;
  reason: string;
}

export interface ConfigEvent {
  ts: string;
  record: string;
  event: 'loaded' | 'reloaded' | 'reload refused';
  source: string;
  hash: string;
  previousHash: string;
  by: string;
  detail: string;
}

export interface LogEvent {
  ts: string;
  record: string;
  event: string;
  detail: string;
}

export interface OperationsSection extends SectionBase {
  id: 'operations';
  suspensions: Listing<SuspensionEvent>;
  kills: Listing<KillEvent>;
  config: Listing<ConfigEvent>;
  /** warden.start / warden.stop / audit.records_lost / audit.pruned. */
  log: Listing<LogEvent>;
  recordsLost: number;
}

export function operations(o: { cap: number }): Aggregator<OperationsSection> {
  const suspensions = new CappedList<SuspensionEvent>(o.cap);
  const kills = new CappedList<KillEvent>(o.cap);
  const config = new CappedList<ConfigEvent>(o.cap);
  const log = new CappedList<LogEvent>(o.cap);
  let lost = 0;
  return {
    record(r: AuditRecord) {
      const d = r.data as Data;
      const s = (k: string): string => str(d[k]) ?? '';
      switch (r.type) {
        case 'identity.suspended':
        case 'identity.resumed':
          suspensions.push({
            ts: r.ts,
            record: ref(r),
            event: r.type === 'identity.suspended' ? 'suspended' : 'resumed',
            identity: s('identity'),
            by: s('by'),
            reason: s('reason'),
            sessionsEnded: strings(d.sessions_ended).length,
          });
          return;
        case 'session.killed':
          kills.push({ ts: r.ts, record: ref(r), session: s('session'), identity: s('identity'), database: s('database'), by: s('by'), reason: s('reason') });
          return;
        case 'config.loaded':
        case 'config.reloaded':
        case 'config.reload_failed': {
          const restart = strings(d.restart_needed);
          config.push({
            ts: r.ts,
            record: ref(r),
            event: r.type === 'config.loaded' ? 'loaded' : r.type === 'config.reloaded' ? 'reloaded' : 'reload refused',
            source: s('source'),
            hash: s('hash'),
            previousHash: s('previous_hash'),
            by: s('identity') || s('trigger') || (r.type === 'config.loaded' ? 'Warden start' : ''),
            detail:
              r.type === 'config.reload_failed'
                ? s('reason')
                : [
                    r.type === 'config.reloaded' && s('hash') !== '' && s('hash') === s('previous_hash') ? 'unchanged (same file hash)' : '',
                    restart.length > 0 ? `needs a restart: ${restart.join(', ')}` : '',
                  ]
                    .filter(Boolean)
                    .join('; '),
          });
          return;
        }
        case 'warden.start':
          log.push({ ts: r.ts, record: ref(r), event: 'Warden started', detail: `version ${s('version')}, pid ${num(d.pid) ?? '?'}, ${s('host')}:${num(d.port) ?? '?'}` });
          return;
        case 'warden.stop':
          log.push({ ts: r.ts, record: ref(r), event: 'Warden stopped', detail: s('reason') });
          return;
        case 'audit.records_lost':
          lost += num(d.count) ?? 0;
          log.push({ ts: r.ts, record: ref(r), event: 'audit records lost', detail: `${num(d.count) ?? '?'} record(s): ${s('reason')}` });
          return;
        case 'audit.pruned':
          log.push({ ts: r.ts, record: ref(r), event: 'audit records pruned (retention)', detail: `before ${s('before')}, through seq ${num(d.through_seq) ?? '?'}` });
          return;
        default:
      }
    },
    finish() {
      return {
        id: 'operations',
        title: 'Suspensions, killed sessions, configuration reloads',
        description: 'Operator and automatic actions: identities suspended and resumed, sessions ended by an operator, configuration loads and reloads (with the SHA-256 of the file), Warden starts and stops, and audit records lost or pruned.',
        controls: controlsOf('operations'),
        suspensions: suspensions.toJSON(),
        kills: kills.toJSON(),
        config: config.toJSON(),
        log: log.toJSON(),
        recordsLost: lost,
      };
    },
  };
}
