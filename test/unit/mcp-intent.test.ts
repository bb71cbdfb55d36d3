/** The intent comment the MCP server puts before an agent's SQL reads back exactly, whatever the text (no way out of the comment). */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { intentComment, wellFormed } from '../../src/mcp/server.js';
import { parseSqlCommenter } from '../../src/intent/sqlcommenter.js';

describe('intentComment', () => {
  it('round-trips reason and ticket, quotes and comment ends included', () => {
    const c = intentComment({ reason: "it's */ DROP TABLE x; /* ok", ticket: 'OPS-1' });
    expect(c).not.toContain('*/ DROP');
    expect(parseSqlCommenter(`${c}SELECT 1`)).toEqual({ reason: "it's */ DROP TABLE x; /* ok", ticket: 'OPS-1' });
    expect(intentComment({ reason: undefined, ticket: '' })).toBe('');
  });
  it('any text round-trips and the comment ends where it is meant to', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 100, unit: 'binary' }).filter((s) => s.length > 0), (reason) => {
        const c = intentComment({ reason });
        expect(c.indexOf('*/')).toBe(c.length - 3);
        expect(parseSqlCommenter(`${c}SELECT 1`).reason).toBe(wellFormed(reason));
      }),
    );
  });
});
