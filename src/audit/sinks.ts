/**
 * Streaming of durable audit records to other systems, best effort and after
 * the store (the store is the record of truth): stdout as JSON lines, a
 * webhook (POST of a JSON array), or OpenTelemetry logs over OTLP/HTTP JSON.
 * Deliveries are batched, retried with backoff, and bounded in memory.
 */
import type { AuditStreamConfig } from '../config/types.js';
import type { Logger } from '../log/logger.js';
import type { AuditRecord } from './chain.js';

export interface AuditSink {
  send(records: readonly AuditRecord[]): void;
  close(): Promise<void>;
}

const MAX_PENDING = 10_000;

class StdoutSink implements AuditSink {
  send(records: readonly AuditRecord[]): void {
    process.stdout.write(records.map((r) => JSON.stringify(r)).join('\n') + '\n');
  }
  async close(): Promise<void> {}
}

/** Posts batches to an HTTP endpoint, one request at a time, retrying with backoff. */
class HttpSink implements AuditSink {
  #pending: AuditRecord[] = [];
  #busy: Promise<void> | null = null;
  #dropped = 0;
  constructor(
    private readonly url: string,
    private readonly body: (records: readonly AuditRecord[]) => unknown,
    private readonly log: Logger,
  ) {}

  send(records: readonly AuditRecord[]): void {
    this.#pending.push(...records);
    if (this.#pending.length > MAX_PENDING) {
      const n = this.#pending.length - MAX_PENDING;
      this.#pending.splice(0, n);
      this.#dropped += n;
    }
    if (!this.#busy) this.#busy = this.#run();
  }

  async #run(): Promise<void> {
    let backoff = 200;
    while (this.#pending.length > 0) {
      const batch = this.#pending.slice(0, 500);
      try {
        const res = await fetch(this.url, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(this.body(batch)),
          signal: AbortSignal.timeout(10_000),
        });
        if (!res.ok) throw new Error(`HTTP ${res.status}`);
        this.#pending.splice(0, batch.length);
        backoff = 200;
      } catch (err) {
        this.log.warn({ sink: redactUrl(this.url), reason: (err as Error).message, dropped: this.#dropped }, 'audit stream delivery failed; retrying');
        await new Promise((r) => setTimeout(r, backoff).unref());
        backoff = Math.min(backoff * 2, 30_000);
      }
    }
    this.#busy = null;
  }

  async close(): Promise<void> {
    // Give in-flight deliveries a moment; the store already has every record.
    if (this.#busy) await Promise.race([this.#busy, new Promise((r) => setTimeout(r, 2_000).unref())]);
  }
}

function redactUrl(u: string): string {
  try {
    const x = new URL(u);
    if (x.password) x.password = '***';
    return x.toString();
  } catch {
    return '<url>';
  }
}

/** OTLP/HTTP JSON logs payload (opentelemetry-proto LogsData). */
export function otlpLogs(records: readonly AuditRecord[]): unknown {
  const attr = (key: string, value: string | number) =>
    typeof value === 'number' ? { key, value: { intValue: String(value) } } : { key, value: { stringValue: value } };
  return {
    resourceLogs: [
      {
        resource: { attributes: [attr('service.name', 'warden')] },
        scopeLogs: [
          {
            scope: { name: 'warden.audit' },
            logRecords: records.map((r) => {
              const d = r.data as Record<string, unknown>;
              const attrs = [attr('warden.audit.instance', r.instance), attr('warden.audit.seq', r.seq), attr('warden.audit.hash', r.hash), attr('event.name', r.type)];
              if (typeof d.identity === 'string') attrs.push(attr('warden.identity', d.identity));
              if (typeof d.session === 'string') attrs.push(attr('warden.session', d.session));
              return {
                timeUnixNano: String(BigInt(Date.parse(r.ts)) * 1_000_000n),
                severityNumber: 9,
                severityText: 'INFO',
                body: { stringValue: JSON.stringify(r) },
                attributes: attrs,
              };
            }),
          },
        ],
      },
    ],
  };
}

export function createSinks(cfg: readonly AuditStreamConfig[], log: Logger): AuditSink[] {
  return cfg.map((c) => {
    switch (c.kind) {
      case 'stdout':
        return new StdoutSink();
      case 'webhook':
        return new HttpSink(c.url, (records) => ({ records }), log);
      case 'otlp':
        return new HttpSink(c.url, otlpLogs, log);
    }
  });
}
