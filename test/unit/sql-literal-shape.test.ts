/** The literal shape used to share analyses: produced only where it cannot misread a literal. */
import { describe, expect, it } from 'vitest';
import { literalShape } from '../../src/sql/literal-shape.js';

describe('literalShape', () => {
  it('abstracts numbers and plain strings, keeps everything else verbatim', () => {
    expect(literalShape('SELECT abalance FROM pgbench_accounts WHERE aid = 4711;')).toBe('SELECT abalance FROM pgbench_accounts WHERE aid = ?i;');
    expect(literalShape("select * from t where a = 'x''y' and b = 1.5e3 and c = .5")).toBe('select * from t where a = ?s and b = ?n and c = ?n');
    expect(literalShape(`select "we'ird" from t1 where x = -3`)).toBe(`select "we'ird" from t1 where x = -?i`);
    expect(literalShape("select date '2020-01-01'")).toBe('select date ?s');
  });

  it('refuses texts where PostgreSQL could read literals differently', () => {
    for (const sql of [
      "select E'a\\'; drop table x; --'",
      "select 'a\\'; drop table x; --'",
      "select U&'d!0061t' UESCAPE '!'",
      "select B'101', X'1F'",
      "select N'abc'",
      "select 'a'\n'b'",
      'select $1',
      'select $$x$$',
      'select 1 -- comment',
      "select 1 /* ticket='x' */",
      'select 0x1F',
      'select 1_000',
      'select 1e',
      'select 1.2.3',
      "select 'unterminated",
      'select "unterminated',
      "select 'é'",
      'select 1 from t where x = 1abc',
      'select 1 \\ 2',
      'select x.1',
      'select t1.5 from t1',
      // `?` spells the placeholders: a text holding one could share another text's shape.
      'select ?n, 5 from t',
      "select ?s, 'x' from t",
      "select data ? 'key' from t",
    ]) {
      expect(literalShape(sql), sql).toBeNull();
    }
  });

  // Counterexamples found by test/unit/fuzz-literal-shape.test.ts.
  it("refuses Unicode identifiers: UESCAPE's string literal decides which column they name", () => {
    // U&"s!0073n" UESCAPE '!' is the column ssn; with '#' it is the column "s!0073n". Sharing one
    // shape, the second (harmless) text's cached verdict was reused for the first (a read of ssn).
    expect(literalShape(`SELECT U&"s!0073n" UESCAPE '!' FROM customers`)).toBeNull();
    expect(literalShape(`SELECT U&"s!0073n" UESCAPE '#' FROM customers`)).toBeNull();
    expect(literalShape(`SELECT u&"ssn", 1 FROM customers`)).toBeNull();
  });

  it('keeps integers (ICONST) apart from other numbers (FCONST), as the grammar does', () => {
    // char(3) parses, char(3.5) and char(2147483648) are syntax errors.
    expect(literalShape("select 'x'::char(3)")).toBe('select ?s::char(?i)');
    expect(literalShape("select 'x'::char(3.5)")).toBe('select ?s::char(?n)');
    expect(literalShape("select 'x'::char(2147483648)")).toBe('select ?s::char(?n)');
    expect(literalShape('select 2147483647')).toBe('select ?i');
  });

  it('refuses a string continued across a vertical tab and a newline, which PostgreSQL reads as one literal', () => {
    expect(literalShape("select 'a'\v\n'b'")).toBeNull();
    expect(literalShape("select 'a'\n\v'b'")).toBeNull();
  });

  it('refuses a ? inside a quoted identifier (every ? of a shape is a placeholder)', () => {
    expect(literalShape('select "?n" from t where a = 1')).toBeNull();
  });

  it('returns null when there is no literal to abstract', () => {
    expect(literalShape('select a from t1')).toBeNull();
  });

  it('keeps different statements apart', () => {
    const a = literalShape("select * from t where a = 'drop table x'");
    const b = literalShape("select * from t where a = 'x'; drop table x; select 'y'");
    expect(a).not.toBe(b);
  });
});
