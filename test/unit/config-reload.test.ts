import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { effectiveConfig, restartNeeded } from '../../src/config/reload.js';

const base = (o: { listen?: string; db?: string; admin?: string; audit?: string; rules?: string; extraIdentity?: string } = {}): string => `version: 1
listen: ${o.listen ?? '{ host: 127.0.0.1, port: 6432 }'}
databases:
  app:
    upstream: ${o.db ?? 'postgres://svc:pw@127.0.0.1:5432/app'}
    environment: test
identities:
  - name: alice
    groups: [ops]
    password: pw1
${o.extraIdentity ?? ''}
${o.admin ?? ''}
${o.audit ?? ''}
rules:
${o.rules ?? '  - { name: no-drop, match: { statement: [drop] }, action: deny }'}
`;

const cfg = (text: string) => parseConfig(text, '/etc/warden/warden.yaml', {});

describe('restartNeeded', () => {
  it('is empty for rules, identities and database labels', () => {
    const a = cfg(base());
    const b = cfg(
      base({
        rules: '  - { name: no-update, match: { statement: [update] }, action: deny }',
        extraIdentity: '  - name: bob\n    password: pw2',
      }).replace('environment: test', 'environment: prod'),
    );
    expect(restartNeeded(a, b)).toEqual([]);
    expect(restartNeeded(a, a)).toEqual([]);
  });

  it('names the listen address, connection cap, admin listener, audit store and a database upstream', () => {
    const a = cfg(base({ admin: 'admin: { port: 7070 }' }));
    const b = cfg(
      base({
        listen: '{ host: 0.0.0.0, port: 6433, max_connections: 50 }',
        db: 'postgres://svc:pw@127.0.0.1:5433/app',
        admin: 'admin: { port: 7071 }',
        audit: 'audit: { store: "jsonl:/tmp/x.jsonl" }',
      }),
    );
    expect(restartNeeded(a, b)).toEqual(['listen.host', 'listen.port', 'listen.max_connections', 'admin', 'audit', 'databases.app.upstream']);
  });

  it('a new database or a changed drain timeout or message size needs no restart', () => {
    const a = cfg(base());
    const b = cfg(
      base({ listen: '{ host: 127.0.0.1, port: 6432, drain_timeout: 5s, max_message_size: 1MiB }' }).replace(
        'identities:',
        '  ledger:\n    upstream: postgres://svc:pw@127.0.0.1:5432/ledger\nidentities:',
      ),
    );
    expect(b.listen.drainTimeoutMs).toBe(5000);
    expect(restartNeeded(a, b)).toEqual([]);
  });
});

describe('effectiveConfig', () => {
  it('keeps the running values of restart-only keys and takes everything else', () => {
    const a = cfg(base({ admin: 'admin: { port: 7070, operators: [ops] }' }));
    const b = cfg(
      base({
        listen: '{ host: 127.0.0.1, port: 7000, drain_timeout: 2s }',
        db: 'postgres://svc:pw@10.0.0.9:5432/app',
        admin: 'admin: { port: 7071, operators: [ops] }',
        rules: '  - { name: no-update, match: { statement: [update] }, action: deny }',
      }),
    );
    const e = effectiveConfig(a, b);
    expect(e.listen.port).toBe(6432);
    expect(e.listen.drainTimeoutMs).toBe(2000);
    expect(e.admin?.port).toBe(7070);
    expect(e.databases.app!.upstream.host).toBe('127.0.0.1');
    expect(e.databases.app!.environment).toBe('test');
    expect(e.rules.map((r) => r.name)).toEqual(['no-update']);
    expect(e.hash).toBe(b.hash);
    // Nothing to keep: the new file as it is.
    expect(effectiveConfig(a, a)).toEqual(a);
  });

  it('does not add an audit section the running Warden does not have', () => {
    const a = cfg(base());
    const b = cfg(base({ audit: 'audit: { store: "jsonl:/tmp/x.jsonl" }' }));
    expect(effectiveConfig(a, b).audit).toBeUndefined();
  });
});
