/**
 * How approval requests show their statement: whole up to the cap, else a visible marker with
 * the full length and SHA-256; nothing shortened silently; characters that could hide text in
 * a terminal escaped.
 */
import crypto from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { abbreviate, APPROVAL_TEXT_CAP, approvalParam, heldNotice, shownText, visibleText } from '../../src/governance/approval-text.js';
import { approvalView, fullTextCommand } from '../../src/governance/approvals.js';
import { parseConfig } from '../../src/config/load.js';
import type { ApprovalRequest } from '../../src/store/types.js';

const sha = (s: string) => crypto.createHash('sha256').update(s, 'utf8').digest('hex');

function request(sql: string, params?: (string | null)[]): ApprovalRequest {
  return {
    id: 'apr_test',
    status: 'pending',
    identity: 'alice',
    database: 'app',
    sql,
    fingerprint: 'f',
    ...(params ? { params } : {}),
    rules: [{ rule: 'r', groups: ['dba'], count: 1 }],
    tables: [],
    classes: [],
    intent: {},
    instance: 'i',
    mode: 'hold',
    createdAt: '2026-01-01T00:00:00.000Z',
    expiresAt: '2026-01-01T00:10:00.000Z',
    decisions: [],
  };
}

describe('shownText', () => {
  it('keeps a text up to the cap whole (the cap is 1 MiB)', () => {
    expect(APPROVAL_TEXT_CAP).toBe(1_048_576);
    const sql = `UPDATE t SET a = 1 WHERE id = 1 /* ${'x'.repeat(20_000)} */ OR true`;
    const s = shownText(sql, APPROVAL_TEXT_CAP, 'cmd');
    expect(s).toEqual({ text: sql, length: sql.length, sha256: sha(sql), truncated: false });
  });
  it('above the cap: the start, then a marker on its own line with the full length, the hash and the command', () => {
    const sql = `SELECT 1 -- ${'y'.repeat(100)}`;
    const s = shownText(sql, 20, 'warden approvals show X --full');
    expect(s.truncated).toBe(true);
    expect(s.length).toBe(sql.length);
    expect(s.sha256).toBe(sha(sql));
    expect(s.text.startsWith(sql.slice(0, 20))).toBe(true);
    expect(s.text.slice(20)).toBe(`\n…[cut by Warden: showing 20 of ${sql.length} characters; sha256 of the full text ${sha(sql)}; full text: warden approvals show X --full]`);
  });
  it('never cuts inside a surrogate pair', () => {
    const s = shownText('ab😀cd', 3, 'c');
    expect(s.text.startsWith('ab\n')).toBe(true);
    expect(s.text).toContain('showing 2 of 6 characters');
  });
});

describe('approvalView', () => {
  it('carries the whole statement and parameters with length and hash', () => {
    const sql = `UPDATE t SET a = $1 WHERE id = 1 /* ${'p'.repeat(17_000)} */ OR true`;
    const v = approvalView(request(sql, ['z'.repeat(5000), null]));
    expect(v.sql).toBe(sql);
    expect(v.params).toEqual(['z'.repeat(5000), null]);
    expect(v).toMatchObject({ sqlLength: sql.length, sqlSha256: sha(sql), sqlTruncated: false });
    expect(v.paramsTruncated).toBeUndefined();
  });
  it('above the cap: marked, and full: true gives it all', () => {
    const sql = `DELETE FROM t WHERE id = 1 ${'-'.repeat(50)} OR true`;
    const v = approvalView(request(sql, ['q'.repeat(100)]), { cap: 30 });
    expect(v.sqlTruncated).toBe(true);
    expect(v.sql).not.toContain('OR true');
    expect(v.sql).toContain(`of ${sql.length} characters`);
    expect(v.sql).toContain(fullTextCommand('apr_test'));
    expect(v.paramsTruncated).toEqual([0]);
    const full = approvalView(request(sql, ['q'.repeat(100)]), { cap: 30, full: true });
    expect(full.sql).toBe(sql);
    expect(full.params).toEqual(['q'.repeat(100)]);
    expect(full.sqlTruncated).toBe(false);
  });
});

describe('parameters and display', () => {
  it('a parameter is whole; a binary one is hex, whole', () => {
    expect(approvalParam(Buffer.from('a'.repeat(1000)), 0)).toBe('a'.repeat(1000));
    expect(approvalParam(Buffer.alloc(300, 0xab), 1)).toBe(`\\x${'ab'.repeat(300)}`);
    expect(approvalParam(null, 0)).toBeNull();
  });
  it('escapes characters that could hide text in a terminal, keeps newlines and tabs', () => {
    expect(visibleText('a\rb')).toBe('a\\u{000d}b');
    expect(visibleText('a\r\nb\tc')).toBe('a\r\nb\tc');
    expect(visibleText('x\u001b[2Ky')).toBe('x\\u{001b}[2Ky');
    expect(visibleText('id = 1\u202e eurt RO')).toBe('id = 1\\u{202e} eurt RO');
    expect(visibleText('zero\u200bwidth')).toBe('zero\\u{200b}width');
  });
  it('abbreviates visibly, with newlines shown', () => {
    expect(abbreviate('a -- c\nOR true', 100)).toBe('a -- c ⏎ OR true');
    expect(abbreviate('x'.repeat(10), 4)).toBe('xxxx… (+6 more characters)');
  });
});

describe('approvals.text_cap', () => {
  const yaml = (cap: string) => `version: 1
listen: { host: 127.0.0.1, port: 0 }
databases:
  app: { upstream: "postgres://u:p@127.0.0.1:5432/app" }
identities:
  - { name: alice, kind: human, password: pw }
approvals: { mode: hold${cap} }
`;
  it('is optional (the service then uses 1 MiB) and configurable from 1024 characters', () => {
    expect(parseConfig(yaml(''), '/tmp/c.yaml', {}).approvals?.textCap).toBeUndefined();
    expect(parseConfig(yaml(', text_cap: 65536'), '/tmp/c.yaml', {}).approvals?.textCap).toBe(65536);
    expect(() => parseConfig(yaml(', text_cap: 100'), '/tmp/c.yaml', {})).toThrow(/approvals\.text_cap/);
  });
});

describe('the notice of a held statement', () => {
  const base = { id: 'apr_x', expiresAt: '2026-01-01T00:10:00.000Z', timeout: '10m' };
  it('names the request, the rule, the approvers and the command (with --admin-url and the API when known)', () => {
    const n = heldNotice({ ...base, rules: [{ rule: 'r1', reason: 'why', groups: ['dba'], count: 1 }], approvers: [['dana']], adminUrl: 'http://127.0.0.1:7070' });
    expect(n.code).toBe('00000');
    expect(n.message).toBe('statement held for approval: request apr_x for rule "r1" (why); it runs once approved');
    expect(n.detail).toMatch(/^Approvers needed: 1 of group dba \(dana\)\. .* expires in 10m \(at 2026-01-01T00:10:00.000Z\)/);
    expect(n.hint).toBe(
      'An approver runs: warden approvals approve apr_x --as dana --reason "..." --admin-url http://127.0.0.1:7070 (API: POST http://127.0.0.1:7070/api/v1/approvals/apr_x/approve with {"reason": "..."})',
    );
  });
  it('several rules and approvers: a placeholder for --as, at most five names, and says when a group is empty', () => {
    const many = ['a', 'b', 'c', 'd', 'e', 'f', 'g'];
    const n = heldNotice({
      ...base,
      rules: [
        { rule: 'r1', groups: ['dba', 'sre'], count: 2 },
        { rule: 'r2', groups: ['nobody'], count: 1 },
      ],
      approvers: [many, []],
    });
    expect(n.message).toContain('for rule "r1", "r2"');
    expect(n.detail).toContain('2 of groups dba/sre (a, b, c, d, e, … (7 in all)); 1 of group nobody (nobody is in it: the request cannot be approved)');
    expect(n.hint).toBe('An approver runs: warden approvals approve apr_x --as <approver> --reason "..."');
  });
});
