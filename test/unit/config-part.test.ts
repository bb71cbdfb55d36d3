/**
 * loadConfigPart: only the sections a command uses are read, resolved and checked.
 * checkConfig: every problem of a file at once; groups nobody is in.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkConfig, ConfigError, loadConfig, loadConfigPart, unknownGroupProblems } from '../../src/config/load.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-config-part-'));
let n = 0;
function file(text: string): string {
  const f = path.join(dir, `c${n++}.yaml`);
  fs.writeFileSync(f, text);
  return f;
}

const FULL = `version: 1
admin: { host: 0.0.0.0, port: 7171, auditors: [dba] }
databases:
  app: { upstream: "postgres://svc:\${APP_DB_PASSWORD}@db:5432/app" }
  other: { upstream: "postgres://svc:\${OTHER_PASSWORD}@db:5432/other" }
identities:
  - { name: alice, kind: human, groups: [analysts], password: "\${ALICE_PASSWORD}" }
  - { name: dana, kind: human, groups: [dba], password: "\${DANA_PASSWORD}" }
sensitive: { key: "\${WARDEN_MASK_KEY}" }
state: { store: "sqlite:./state.db" }
audit: { store: "sqlite:./audit.db" }
`;

describe('loadConfigPart', () => {
  it('reads the admin section with none of the other variables set', () => {
    const f = file(FULL);
    expect(() => loadConfig(f, {})).toThrow(ConfigError);
    const part = loadConfigPart(f, { sections: ['admin'] }, {});
    expect(part.admin).toMatchObject({ host: '0.0.0.0', port: 7171, auditors: ['dba'] });
    expect(part.databaseNames).toEqual(['app', 'other']);
    expect(part.source).toBe(f);
    expect(Object.keys(part).sort()).toEqual(['admin', 'databaseNames', 'hash', 'source', 'version']);
  });

  it("resolves only the named identity's password, and the stores", () => {
    const f = file(FULL);
    const part = loadConfigPart(f, { sections: ['identities', 'state', 'audit'], identities: ['dana'] }, { DANA_PASSWORD: 'dpw' });
    expect(part.identities).toEqual([{ name: 'dana', kind: 'human', groups: ['dba'], password: 'dpw' }]);
    expect(part.state?.store).toEqual({ kind: 'sqlite', location: path.join(dir, 'state.db') });
    expect(part.audit?.store).toEqual({ kind: 'sqlite', location: path.join(dir, 'audit.db') });
    expect(() => loadConfigPart(f, { sections: ['identities'], identities: ['alice'] }, { DANA_PASSWORD: 'dpw' })).toThrow(
      /identities\[0\]\.password: environment variable ALICE_PASSWORD is not set/,
    );
  });

  it('still checks what it reads: a problem in the section, a wrong version', () => {
    expect(() => loadConfigPart(file(FULL.replace('port: 7171', 'port: 99999')), { sections: ['admin'] }, {})).toThrow(/admin\.port: must be at most 65535/);
    expect(() => loadConfigPart(file(FULL.replace('version: 1', 'version: 2')), { sections: ['admin'] }, {})).toThrow(/unsupported version 2/);
    expect(() => loadConfigPart(file(FULL.replace('admin: {', 'admin: { bogus: 1,')), { sections: ['admin'] }, {})).toThrow(/admin\.bogus: unknown key/);
    const none = loadConfigPart(file(FULL.replace(/^admin:.*\n/m, '')), { sections: ['admin'] }, {});
    expect(none.admin).toBeUndefined();
  });
});

describe('checkConfig', () => {
  it('lists every unset variable and schema problem, in document order; none when all is well', () => {
    const f = file(FULL.replace('kind: human, groups: [analysts]', 'kind: person, groups: [analysts]'));
    const r = checkConfig(f, {});
    expect(r.config).toBeUndefined();
    expect(r.problems.map((p) => p.path)).toEqual([
      'databases.app.upstream',
      'databases.other.upstream',
      'identities[0].kind',
      'identities[0].password',
      'identities[1].password',
      'sensitive.key',
    ]);
    const env = { APP_DB_PASSWORD: 'a', OTHER_PASSWORD: 'o', ALICE_PASSWORD: 'x', DANA_PASSWORD: 'y', WARDEN_MASK_KEY: '0123456789abcdef' };
    const ok = checkConfig(file(FULL), env);
    expect(ok.problems).toEqual([]);
    expect(ok.config?.admin?.port).toBe(7171);
  });

  it('reports groups nobody is in (approvers, auditors, operators); loadConfig does not refuse them', () => {
    const text = `version: 1
admin: { auditors: [audit], operators: [ops, dba] }
databases: { app: { upstream: "postgres://svc@db/app" } }
identities: [{ name: dana, kind: human, groups: [dba], password: x }]
rules:
  - { name: r1, match: { statement: [write] }, action: approve, approvers: { groups: [dba, dbas], count: 1 } }
  - { name: r2, match: { statement: [ddl] }, action: deny, approvers: { groups: [nobody] } }
`;
    const r = checkConfig(file(text), {});
    // r2's approvers are a schema problem of their own (not allowed on deny): not reported twice.
    expect(r.problems.map((p) => `${p.path}: ${p.message.split(',')[0]}`)).toEqual([
      'admin.auditors[0]: no identity is in group "audit"',
      'admin.operators[0]: no identity is in group "ops"',
      'rules[0].approvers.groups[1]: no identity is in group "dbas"',
      'rules[1].approvers: only allowed when action is approve (this rule\'s action is deny)',
    ]);
    const loaded = loadConfig(file(text.replace(/  - \{ name: r2.*\n/, '')), {});
    expect(unknownGroupProblems(loaded).map((p) => p.path)).toEqual(['admin.auditors[0]', 'admin.operators[0]', 'rules[0].approvers.groups[1]']);
  });

  it('a YAML syntax error or an unreadable file is one problem, not an exception', () => {
    expect(checkConfig(file('version: 1\n  bad: [\n'), {}).problems).toHaveLength(1);
    expect(checkConfig(path.join(dir, 'missing.yaml'), {}).problems).toEqual([{ path: '', message: 'cannot read the configuration file: no such file' }]);
  });
});
