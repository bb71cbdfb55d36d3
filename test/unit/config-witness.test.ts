/** `audit.witness`: accepted forms, and clear errors for bad entries (config.test.ts style). */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../src/config/load.js';

const FILE = '/etc/warden/case.yaml';

function yaml(audit: string): string {
  return `version: 1
databases:
  app:
    upstream: postgres://svc:pw@db.internal:5433/appdb
audit:
  store: sqlite:./audit.db
${audit}`;
}

function configError(text: string, env: NodeJS.ProcessEnv = {}): ConfigError {
  try {
    parseConfig(text, FILE, env);
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('audit.witness', () => {
  it('one entry or a list; file paths resolve against the config file; absent when not configured', () => {
    const one = parseConfig(yaml('  signing_key: ./k.pem\n  witness: file:../witness/cp.jsonl\n'), FILE, {});
    expect(one.audit?.witness).toEqual([{ kind: 'file', path: '/etc/witness/cp.jsonl' }]);
    const list = parseConfig(
      yaml(`  signing_key: ./k.pem
  witness:
    - file:/mnt/other/cp.jsonl
    - stdout
    - postgres://witness:\${W_PW}@pg.internal/audit
    - https://witness.example/checkpoints
    - webhook: http://127.0.0.1:9000/cp
`),
      FILE,
      { W_PW: 'p@ss/word' },
    );
    expect(list.audit?.witness).toEqual([
      { kind: 'file', path: '/mnt/other/cp.jsonl' },
      { kind: 'stdout' },
      // ${NAME} in a URL's user-info is percent-encoded, as in audit.store.
      { kind: 'postgres', url: 'postgres://witness:p%40ss%2Fword@pg.internal/audit' },
      { kind: 'webhook', url: 'https://witness.example/checkpoints' },
      { kind: 'webhook', url: 'http://127.0.0.1:9000/cp' },
    ]);
    const none = parseConfig(yaml('  signing_key: ./k.pem\n'), FILE, {});
    expect(none.audit).not.toHaveProperty('witness');
  });

  const cases: { name: string; audit: string; key: string; message: string | RegExp }[] = [
    {
      name: 'no signing key',
      audit: '  witness: file:/mnt/other/cp.jsonl\n',
      key: 'audit.witness',
      message: 'audit.witness needs audit.signing_key: a witness keeps signed checkpoints (create a key with warden audit keygen --out FILE)',
    },
    { name: 'unknown form', audit: '  signing_key: k.pem\n  witness: /mnt/other/cp.jsonl\n', key: 'audit.witness', message: /^expected file:PATH, stdout, postgres:\/\/\.\.\., an http\(s\):\/\/ webhook URL, or \{ webhook: URL \}, got "\/mnt\/other\/cp.jsonl"$/ },
    { name: 'bad entry in a list', audit: '  signing_key: k.pem\n  witness: [stdout, "sqlite:./w.db"]\n', key: 'audit.witness[1]', message: /^expected file:PATH, .*got "sqlite:\.\/w\.db"$/ },
    { name: 'empty file path', audit: '  signing_key: k.pem\n  witness: "file:"\n', key: 'audit.witness', message: /^file: needs a path/ },
    { name: 'bad postgres URL', audit: '  signing_key: k.pem\n  witness: "postgres://"\n', key: 'audit.witness', message: /^URL / },
    { name: 'object with another key', audit: '  signing_key: k.pem\n  witness: [{ otlp: "http://x/v1/logs" }]\n', key: 'audit.witness[0]', message: /an object has the one key webhook$/ },
    { name: 'webhook not http', audit: '  signing_key: k.pem\n  witness: [{ webhook: "ftp://x/y" }]\n', key: 'audit.witness[0]', message: 'webhook: must be an http:// or https:// URL' },
    { name: 'a number', audit: '  signing_key: k.pem\n  witness: 5\n', key: 'audit.witness', message: /^expected file:PATH/ },
    { name: 'the store itself', audit: '  signing_key: k.pem\n  witness: file:./audit.db\n', key: 'audit.witness', message: "file:/etc/warden/audit.db is the audit store's own file; a witness must be another file, ideally on another volume" },
    { name: "the store's -wal file", audit: '  signing_key: k.pem\n  witness: [stdout, "file:/etc/warden/audit.db-wal"]\n', key: 'audit.witness[1]', message: /is the audit store's own file/ },
    { name: 'duplicate', audit: '  signing_key: k.pem\n  witness: ["file:/w/cp.jsonl", stdout, "file:/w/../w/cp.jsonl"]\n', key: 'audit.witness[2]', message: 'duplicate witness file:/w/cp.jsonl (already audit.witness[0])' },
  ];
  for (const c of cases) {
    it(`refuses: ${c.name}`, () => {
      const e = configError(yaml(c.audit));
      expect(e.file).toBe(FILE);
      expect(e.key).toBe(c.key);
      if (typeof c.message === 'string') expect(e.problem).toBe(c.message);
      else expect(e.problem).toMatch(c.message);
    });
  }

  it("the jsonl store's checkpoint file is refused too", () => {
    const e = configError(yaml('  signing_key: k.pem\n  witness: file:./audit.jsonl.checkpoints.jsonl\n').replace('sqlite:./audit.db', 'jsonl:./audit.jsonl'));
    expect(e.problem).toBe(`file:${join('/etc/warden', 'audit.jsonl.checkpoints.jsonl')} is the audit store's own file; a witness must be another file, ideally on another volume`);
  });
});
