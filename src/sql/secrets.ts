/**
 * Secrets in statement text: which constants of a query string are secrets, and the text with
 * each of them replaced by `'<redacted>'`, so that no password or connection credential reaches
 * an audit record, a log line, an approval request or a webhook.
 *
 * The decision is made on PostgreSQL's parse tree (libpg-query), and each secret is located in the
 * text with PostgreSQL's own scanner, so quoting (`E'…'`, `U&'…'`, `$$…$$`, continued strings,
 * comments) cannot move or hide it. What counts as a secret (an allowlist; docs/security.md):
 *
 * 1. **Role passwords**: the value of `PASSWORD` / `ENCRYPTED PASSWORD` in CREATE / ALTER
 *    ROLE | USER | GROUP (a SCRAM or md5 verifier too; `PASSWORD NULL` has none).
 * 2. **Password-like options**: the value of every option whose name looks like a credential
 *    ({@link isSecretName}: `password`, `sslpassword`, `passfile`, `pwd`, `*secret*`, `*token*`,
 *    `*credential*`, `*api_key*`, ...) in any option list (user mappings, servers, foreign
 *    tables, wrappers, IMPORT FOREIGN SCHEMA, reloptions), and of every run-time setting with such
 *    a name (`SET`, `ALTER ROLE | DATABASE ... SET`, `ALTER SYSTEM SET`, `set_config(name, value)`).
 * 3. **Subscriptions**: every `CONNECTION '…'` string of CREATE / ALTER SUBSCRIPTION.
 * 4. **dblink**: every constant in the arguments of `dblink_connect` / `dblink_connect_u`, and in
 *    the first argument of `dblink` / `dblink_exec` when it is a connection string rather than a
 *    connection name.
 * 5. **Connection strings anywhere**: any string constant that reads as a libpq conninfo with a
 *    `password` / `sslpassword` keyword, or as a URI with a password (`scheme://user:pass@…`, or
 *    `?password=`).
 * 6. **Nested text**: a string constant that may carry any of these (a DO or function body, the
 *    SQL of `dblink_exec`, a dynamic `EXECUTE` string) is redacted inside, recursively: when it
 *    parses as SQL by these same rules; otherwise (PL/pgSQL) by its tokens (a string after
 *    `PASSWORD`, `CONNECTION` or a password-like name, a connection string, the arguments of
 *    `dblink_connect`).
 *
 * Bind parameters of a statement that carries any of these must not be recorded
 * ({@link SecretRedaction.maskParams}). A text PostgreSQL cannot parse that may carry one is
 * withheld whole (it does not run), and its parse error is cut before the token it names.
 *
 * Cost: a text that contains none of a few words (`pass`, `pwd`, `secret`, `token`,
 * `credential`, `api_key`-like names, `connection`, `dblink`, `://`) nor a construct that could
 * spell one in escapes (`\`, `U&`, a string continued on the next line) is ruled out by one
 * regular-expression pass, without a parse; results are memoized per analysis object and text.
 *
 * @module
 */
import { scanSync } from 'libpg-query';
import { parseStatements, sliceBytes, type RawStatement } from './parser.js';
import { arr, isObj, obj, strVal, unwrap, type Obj } from './tree.js';

/** What a secret is replaced with: a string constant, so the text still reads as SQL. */
export const REDACTED = "'<redacted>'";

/** A statement text as it may leave Warden. */
export interface SecretRedaction {
  /** The text with every secret replaced by {@link REDACTED}, or a marker when it was withheld whole. */
  readonly text: string;
  /** `withheld`: PostgreSQL could not parse it and it may carry a secret: nothing of it is kept. */
  readonly how: 'redacted' | 'withheld';
  /** Its bind parameters must be recorded as `<masked>`. */
  readonly maskParams: boolean;
  /** What was found, for notes and tests (`role password`, `option password`, `dblink`, ...). */
  readonly found: readonly string[];
}

/** The marker a withheld text is recorded as. */
export const WITHHELD_SECRET = '<statement withheld: could not be parsed and may carry a secret (password, connection string)>';

/**
 * Words (case-insensitive) without which no rule can match, and escapes that could spell them.
 * Not the decision: only what lets a text skip the parse.
 */
const MAY_CARRY = /pass|pwd|secret|token|credential|(?:api|private|access|signing)_?key|connection|dblink|:\/\/|u&|\\|'[ \t\f]*[\r\n]/i;

/** A faster first pass, matching whenever {@link MAY_CARRY} does (case classes instead of `/i`). */
const MAY_CARRY_FAST = /[pP][aA][sS][sS]|[pP][wW][dD]|[sS][eE][cC][rR]|[tT][oO][kK][eE]|[cC][rR][eE][dD]|[cC][oO][nN][nN]|[dD][bB][lL]|[kK][eE][yY]|:\/|[uU]&|\\|'[ \t\f]*[\r\n]/;

/** Option / setting names whose values are secrets. */
const SECRET_NAME = /pass|pwd|secret|token|credential|(?:api|private|access|signing)_?key/i;
/** Names that match {@link SECRET_NAME} but hold no secret (a boolean, an algorithm). */
const NOT_SECRET_NAMES: ReadonlySet<string> = new Set(['password_required', 'password_encryption']);

/** Whether an option or setting of this name holds a credential. */
export function isSecretName(name: string): boolean {
  return SECRET_NAME.test(name) && !NOT_SECRET_NAMES.has(name.toLowerCase());
}

/**
 * The keywords of a libpq `key=value ...` connection string, read as libpq's conninfo_parse does
 * (spaces around `=`, values bare or single-quoted, backslash escapes); `undefined` when the text
 * is not one (libpq would reject it, so it connects nowhere).
 */
export function conninfoKeys(text: string): string[] | undefined {
  const keys: string[] = [];
  let i = 0;
  const n = text.length;
  const space = (c: string | undefined): boolean => c !== undefined && /\s/.test(c);
  for (;;) {
    while (space(text[i])) i++;
    if (i >= n) break;
    const k0 = i;
    while (i < n && text[i] !== '=' && !space(text[i])) i++;
    const key = text.slice(k0, i);
    while (space(text[i])) i++;
    if (text[i] !== '=' || !/^[a-z_]+$/i.test(key)) return undefined;
    i++;
    while (space(text[i])) i++;
    if (text[i] === "'") {
      i++;
      for (;;) {
        if (i >= n) return undefined; // unterminated quoted value
        if (text[i] === '\\') i += 2;
        else if (text[i] === "'") break;
        else i++;
      }
      i++;
    } else {
      while (i < n && !space(text[i])) i += text[i] === '\\' ? 2 : 1;
    }
    keys.push(key.toLowerCase());
  }
  return keys.length > 0 ? keys : undefined;
}

/** A URI with a password in its user info: `scheme://user:pass@host`. */
const URI_USERINFO_PASSWORD = /^[a-z][a-z0-9+.-]*:\/\/[^\s/?#@]*:[^\s/?#@]*@/i;

/**
 * Whether a string value is a connection string carrying a secret: a libpq conninfo with
 * `password=` / `sslpassword=`, or a URI with `user:password@` or a password-like query
 * parameter (percent-decoded).
 */
export function isSecretConnectionString(value: string): boolean {
  const keys = conninfoKeys(value);
  if (keys) return keys.some((k) => k === 'password' || k === 'sslpassword');
  const v = value.trim();
  if (!v.includes('://')) return false;
  if (URI_USERINFO_PASSWORD.test(v)) return true;
  const q = v.indexOf('?');
  if (q < 0) return false;
  let query = v.slice(q + 1);
  try {
    query = decodeURIComponent(query);
  } catch {
    return true; // malformed percent-encoding: cannot tell
  }
  return /(?:^|&)\s*[^=&]*pass[^=&]*=/i.test(query);
}

/** Whether a text contains any word or escape a secret could be written with (cheap; not the decision). */
export function mayCarrySecret(text: string): boolean {
  return MAY_CARRY_FAST.test(text) && MAY_CARRY.test(text);
}

const memo = new WeakMap<object, { sql: string; result: SecretRedaction | null }>();

/**
 * The text to record for a statement: `null` when it carries no secret (record it as it is),
 * otherwise the text with every secret replaced, or withheld whole when it cannot be parsed.
 *
 * @param sql the query text as the client sent it
 * @param memoKey the statement's analysis (or any object shared by repeats of this text): the
 *   result is kept per object, for this text
 */
export function redactSecrets(sql: string, memoKey?: object): SecretRedaction | null {
  if (memoKey) {
    const hit = memo.get(memoKey);
    if (hit && hit.sql === sql) return hit.result;
  }
  const result = mayCarrySecret(sql) ? redactText(sql) : null;
  if (memoKey && !memo.has(memoKey)) memo.set(memoKey, { sql, result });
  return result;
}

/**
 * A parse error as it may be recorded for a withheld text: PostgreSQL's message names the token
 * it stopped at (`syntax error at or near "'s3cret"`), which may be the secret.
 */
export function redactParseError(message: string): string {
  return message.replace(/ at or near ".*?"(?=\s*(?:\(at character \d+\)|\)|$|;))/g, ' at or near <redacted>');
}

/**
 * A message about a statement (PostgreSQL's error, a refusal) as it may be recorded: PostgreSQL
 * quotes what it could not read (`invalid input syntax for type integer: "…"`, `missing "=" after
 * "…" in connection info string`, `syntax error at or near "…"`), which may be a secret. Every
 * double-quoted part of the message that appears in the statement as sent but not in the text as
 * recorded is replaced by `<redacted>`.
 *
 * @param sql the statement as the client sent it
 * @param redaction what {@link redactSecrets} returned for it (`null`: the message is kept)
 */
export function redactMessage(message: string, sql: string, redaction: SecretRedaction | null): string {
  if (!redaction) return message;
  const kept = redaction.how === 'withheld' ? '' : redaction.text;
  const out = message.replace(/"((?:[^"]|"")*)"/g, (whole, inner: string) => (/[\p{L}\p{N}]/u.test(inner) && sql.includes(inner) && !kept.includes(inner) ? '<redacted>' : whole));
  return redaction.how === 'withheld' ? redactParseError(out) : out;
}

// ---------------------------------------------------------------------------------------------

/** Nesting limit for text inside constants (a body inside a body ...). */
const MAX_DEPTH = 6;

interface Token {
  readonly start: number;
  readonly end: number;
  readonly text: string;
  readonly name: string;
  readonly keyword: boolean;
}

type TokenKind = 'string' | 'number' | 'other';

function tokenKind(t: Token): TokenKind {
  if (t.name === 'SCONST' || /^u&'/i.test(t.text)) return 'string';
  if (t.name === 'ICONST' || t.name === 'FCONST') return 'number';
  return 'other';
}

function isComment(t: Token): boolean {
  return t.name === 'SQL_COMMENT' || t.name === 'C_COMMENT';
}

function scan(text: string): Token[] {
  const out: Token[] = [];
  for (const t of scanSync(text).tokens) {
    const tok: Token = { start: t.start, end: t.end, text: t.text, name: t.tokenName, keyword: t.keywordKind !== 0 };
    if (!isComment(tok)) out.push(tok);
  }
  return out;
}

/** A span of the text (UTF-8 byte offsets) and what replaces it. */
interface Edit {
  readonly start: number;
  readonly end: number;
  readonly with: string;
}

class Withhold extends Error {}

/** `text` as a string constant: in the dollar quotes of `original` when it was dollar-quoted (and they still fit), else a standard SQL string. */
function quoteLike(original: string, text: string): string {
  if (text === '<redacted>') return REDACTED;
  const tag = /^\$[^$]*\$/.exec(original)?.[0];
  if (tag && !text.includes(tag)) return `${tag}${text}${tag}`;
  return `'${text.replace(/'/g, "''")}'`;
}

/** Collects the secrets of one query text. */
class Redactor {
  readonly edits = new Map<number, Edit>();
  readonly found = new Set<string>();
  maskParams = false;
  private readonly tokens: Token[];
  private readonly byStart = new Map<number, number>();

  constructor(
    private readonly sql: string,
    private readonly depth: number,
  ) {
    this.tokens = scan(sql);
    this.tokens.forEach((t, i) => this.byStart.set(t.start, i));
  }

  /** The token index of the string (or number) constant at or after byte `at` (before `limit`). */
  private constantAt(at: number, from: 'at' | 'after', kinds: readonly TokenKind[] = ['string']): number {
    let i = this.byStart.get(at);
    if (i === undefined) {
      i = this.tokens.findIndex((t) => t.start >= at);
      if (i < 0) throw new Withhold();
    }
    if (from === 'at' && kinds.includes(tokenKind(this.tokens[i]!))) return i;
    for (let j = from === 'at' ? i : i + 1; j < this.tokens.length; j++) {
      if (kinds.includes(tokenKind(this.tokens[j]!))) return j;
    }
    throw new Withhold();
  }

  /** The span of the constant token `i`, with a `UESCAPE '…'` clause that follows a U& string. */
  private span(i: number): { start: number; end: number } {
    const t = this.tokens[i]!;
    const next = this.tokens[i + 1];
    if (/^u&/i.test(t.text) && next && next.text.toUpperCase() === 'UESCAPE' && this.tokens[i + 2]) return { start: t.start, end: this.tokens[i + 2]!.end };
    return { start: t.start, end: t.end };
  }

  /** Replace the constant token `i` whole. */
  private redactToken(i: number, what: string): void {
    const s = this.span(i);
    this.edits.set(s.start, { start: s.start, end: s.end, with: REDACTED });
    this.found.add(what);
    this.maskParams = true;
  }

  /** A string constant that is not a secret by its place: a secret by its value, or text with secrets inside. */
  private checkValue(i: number, value: string): void {
    if (!mayCarrySecret(value)) return;
    const inner = this.depth < MAX_DEPTH ? redactNested(value, this.depth + 1) : { text: '<redacted>', found: ['nested text'] };
    if (!inner) return;
    const s = this.span(i);
    if (this.edits.has(s.start)) return;
    this.edits.set(s.start, { start: s.start, end: s.end, with: quoteLike(this.tokens[i]!.text, inner.text) });
    for (const f of inner.found) this.found.add(f);
    this.maskParams = true;
  }

  /** Walks one statement's tree. */
  statement(raw: RawStatement): void {
    this.walk(raw.stmt, false);
    const u = unwrap(raw.stmt);
    if (!u) return;
    const [type, n] = u;
    if ((type === 'CreateSubscriptionStmt' || (type === 'AlterSubscriptionStmt' && n['kind'] === 'ALTER_SUBSCRIPTION_CONNECTION')) && typeof n['conninfo'] === 'string') {
      this.redactToken(this.connectionString(raw), 'subscription connection');
    }
    // COPY … FROM | TO PROGRAM '…': a shell command (a plain string in the tree), checked by its value.
    if (type === 'CopyStmt' && n['is_program'] && typeof n['filename'] === 'string' && mayCarrySecret(n['filename'])) {
      const i = this.stringAfterKeyword(raw, 'PROGRAM');
      if (i < 0) throw new Withhold();
      this.checkValue(i, n['filename']);
    }
  }

  /** The token of the first string constant right after keyword `kw` in the statement; -1 when none. */
  private stringAfterKeyword(raw: RawStatement, kw: string): number {
    const end = raw.length ? raw.location + raw.length : Number.POSITIVE_INFINITY;
    for (let i = 0; i + 1 < this.tokens.length; i++) {
      const t = this.tokens[i]!;
      if (t.start < raw.location || t.start >= end) continue;
      if (t.keyword && t.text.toUpperCase() === kw && tokenKind(this.tokens[i + 1]!) === 'string') return i + 1;
    }
    return -1;
  }

  /** The token of a subscription's `CONNECTION '…'` string: the first string right after a CONNECTION keyword in the statement. */
  private connectionString(raw: RawStatement): number {
    const i = this.stringAfterKeyword(raw, 'CONNECTION');
    if (i < 0) throw new Withhold();
    return i;
  }

  /** Every constant under `node`: redacted when `secret`, else checked by value. */
  private walk(node: unknown, secret: boolean, what = 'secret'): void {
    if (Array.isArray(node)) {
      for (const x of node) this.walk(x, secret, what);
      return;
    }
    if (!isObj(node)) return;
    const u = unwrap(node);
    if (!u) {
      // ALTER ROLE | DATABASE ... SET carries its VariableSetStmt unwrapped.
      if (typeof node['kind'] === 'string' && node['kind'].startsWith('VAR_') && typeof node['name'] === 'string') {
        this.walk(node['args'], secret || isSecretName(node['name']), `setting ${node['name']}`);
        return;
      }
      for (const v of Object.values(node)) this.walk(v, secret, what);
      return;
    }
    const [type, n] = u;
    switch (type) {
      case 'A_Const': {
        const sval = obj(n['sval']);
        const loc = n['location'];
        if (typeof loc !== 'number') {
          if (secret) throw new Withhold();
          return;
        }
        if (sval) {
          const i = this.constantAt(loc, 'at');
          if (secret) this.redactToken(i, what);
          else this.checkValue(i, typeof sval['sval'] === 'string' ? sval['sval'] : '');
        } else if (secret && !n['isnull'] && ('ival' in n || 'fval' in n)) {
          this.redactToken(this.constantAt(loc, 'at', ['number']), what);
        }
        return;
      }
      case 'ParamRef':
        if (secret) this.maskParams = true;
        return;
      case 'DefElem':
        return this.defElem(n, secret, what);
      case 'VariableSetStmt': {
        const name = typeof n['name'] === 'string' ? n['name'] : '';
        this.walk(n['args'], secret || isSecretName(name), `setting ${name}`);
        return;
      }
      case 'FuncCall':
        return this.funcCall(n, secret, what);
      default:
        for (const v of Object.values(n)) this.walk(v, secret, what);
    }
  }

  /** An option: its String values are located by the tokens after the option's own location. */
  private defElem(n: Obj, secret: boolean, what: string): void {
    const name = typeof n['defname'] === 'string' ? n['defname'] : '';
    const isSecret = secret || isSecretName(name);
    const label = secret ? what : `option ${name}`;
    const arg = n['arg'];
    if (arg === undefined || arg === null) return;
    const loc = typeof n['location'] === 'number' ? n['location'] : undefined;
    const u = unwrap(arg);
    const values = u && u[0] === 'List' ? arr(u[1]['items']) : [arg];
    let cursor = loc;
    let from: 'at' | 'after' = 'at'; // the first value may start where the option does (DO's body)
    for (const v of values) {
      const vu = unwrap(v);
      const plain = vu && (vu[0] === 'String' || vu[0] === 'Integer' || vu[0] === 'Float');
      if (!plain) {
        this.walk(v, isSecret, label);
        continue;
      }
      const value = vu[0] === 'String' ? (strVal(v) ?? '') : String(vu[1]['ival'] ?? vu[1]['fval'] ?? '');
      if (!isSecret && (vu[0] !== 'String' || !mayCarrySecret(value))) continue;
      const i = cursor === undefined ? -1 : this.valueToken(cursor, from, value, vu[0] === 'String' ? 'string' : 'number');
      if (i < 0) {
        // Not a constant: an identifier or keyword (`enabled = false`), or not where it should be.
        if (isSecret) throw new Withhold();
        continue;
      }
      cursor = this.tokens[i]!.start;
      from = 'after';
      if (isSecret) this.redactToken(i, label);
      else this.checkValue(i, value);
    }
  }

  /**
   * The token of an option's value: among the few tokens at or after `at` (the option's name,
   * `ENCRYPTED PASSWORD`, `=`, a comma), the constant that reads as `value`; -1 when none does.
   */
  private valueToken(at: number, from: 'at' | 'after', value: string, kind: TokenKind): number {
    let i = this.byStart.get(at) ?? this.tokens.findIndex((t) => t.start >= at);
    if (i < 0) return -1;
    if (from === 'after') i++;
    for (let j = i; j < Math.min(this.tokens.length, i + 4); j++) {
      const t = this.tokens[j]!;
      const k = tokenKind(t);
      if (k === 'number' && kind === 'number' && Number(t.text) === Number(value)) return j;
      if (k !== 'string') continue;
      const s = this.span(j);
      if (kind === 'string' && decodeToken(sliceBytes(this.sql, s.start, s.end)) === value) return j;
      return -1;
    }
    return -1;
  }

  private funcCall(n: Obj, secret: boolean, what: string): void {
    const name = (arr(n['funcname']).map(strVal).pop() ?? '').toLowerCase();
    const args = arr(n['args']);
    this.walk(n['agg_filter'], secret, what);
    this.walk(n['over'], secret, what);
    this.walk(n['agg_order'], secret, what);
    if (name === 'dblink_connect' || name === 'dblink_connect_u') {
      this.maskParams = true;
      this.found.add('dblink connection');
      this.walk(args, true, 'dblink connection');
      return;
    }
    if (name.startsWith('dblink')) {
      this.maskParams = true;
      const first = args[0];
      if (first !== undefined && (name === 'dblink' || name === 'dblink_exec') && args.length >= 2 && !isPlainName(first)) {
        this.found.add('dblink connection');
        this.walk(first, true, 'dblink connection');
        this.walk(args.slice(1), secret, what);
        return;
      }
    }
    if (name === 'set_config' && args.length >= 2) {
      const setting = constString(args[0]);
      if (setting === undefined || isSecretName(setting)) {
        this.walk(args[0], secret, what);
        this.walk(args[1], true, `setting ${setting ?? '(computed)'}`);
        this.walk(args.slice(2), secret, what);
        return;
      }
    }
    this.walk(args, secret, what);
  }

  /** The text with every edit applied. */
  result(): string {
    const buf = Buffer.from(this.sql, 'utf8');
    const parts: Buffer[] = [];
    let at = 0;
    for (const e of [...this.edits.values()].sort((a, b) => a.start - b.start)) {
      if (e.start < at) continue;
      parts.push(buf.subarray(at, e.start), Buffer.from(e.with, 'utf8'));
      at = e.end;
    }
    parts.push(buf.subarray(at));
    return Buffer.concat(parts).toString('utf8');
  }
}

/** A string constant that names a dblink connection (no `=`, no `://`), not a connection string. */
function isPlainName(node: unknown): boolean {
  const v = constString(node);
  return v !== undefined && !v.includes('=') && !v.includes('://');
}

function constString(node: unknown): string | undefined {
  const u = unwrap(node);
  if (!u) return undefined;
  if (u[0] === 'TypeCast') return constString(u[1]['arg']);
  if (u[0] !== 'A_Const') return undefined;
  const s = obj(u[1]['sval']);
  return s ? (typeof s['sval'] === 'string' ? s['sval'] : '') : undefined;
}

/** Parses and redacts a whole query text; throws {@link Withhold} when it cannot. */
function redactParsed(sql: string, depth: number): { text: string; found: string[]; maskParams: boolean } | null {
  const parsed = parseStatements(sql);
  if (!parsed.ok) throw new Withhold();
  let r: Redactor;
  try {
    r = new Redactor(sql, depth);
  } catch (err) {
    if (err instanceof Withhold) throw err;
    throw new Withhold(); // the scanner failed where the parser did not: cannot locate anything
  }
  for (const s of parsed.statements) r.statement(s);
  if (r.edits.size === 0 && !r.maskParams) return null;
  return { text: r.edits.size > 0 ? r.result() : sql, found: [...r.found], maskParams: r.maskParams };
}

function redactText(sql: string): SecretRedaction | null {
  try {
    const r = redactParsed(sql, 0);
    return r ? { text: r.text, how: 'redacted', maskParams: r.maskParams, found: r.found } : null;
  } catch {
    // Withhold, a tree too deep to walk, or a shape this module does not expect: keep nothing of it.
    return { text: WITHHELD_SECRET, how: 'withheld', maskParams: true, found: ['unparsable'] };
  }
}

/** A URI with a password in its user info, anywhere in a text (a shell command, a comment-like string). */
const URI_PASSWORD_ANYWHERE = /\b([a-z][a-z0-9+.-]*:\/\/[^\s/?#@:'"]*):[^\s/?#@'"]*@/gi;

/**
 * Text inside a constant (a body, dynamic SQL): redacted as SQL when it parses, else by its
 * tokens; `null` when it carries nothing; the whole constant when neither can read it.
 */
function redactNested(text: string, depth: number): { text: string; found: readonly string[] } | null {
  if (!mayCarrySecret(text)) return null;
  if (parseStatements(text).ok) {
    try {
      const r = redactParsed(text, depth);
      return r && r.text !== text ? { text: r.text, found: r.found } : null;
    } catch {
      return { text: '<redacted>', found: ['nested text'] };
    }
  }
  if (isSecretConnectionString(text)) return { text: '<redacted>', found: ['connection string'] };
  // `COPY … FROM PROGRAM 'pg_dump postgresql://u:pw@h/db'`: a URI inside other text.
  const uris = text.replace(URI_PASSWORD_ANYWHERE, '$1:<redacted>@');
  try {
    const r = redactTokens(uris, depth);
    return r ?? (uris !== text ? { text: uris, found: ['connection string'] } : null);
  } catch {
    return { text: '<redacted>', found: ['nested text'] };
  }
}

/** Decodes one string-constant token (with its UESCAPE clause) with PostgreSQL's parser; `undefined` when it cannot. */
function decodeToken(text: string): string | undefined {
  const p = parseStatements(`SELECT ${text}`);
  if (!p.ok || p.statements.length !== 1) return undefined;
  const target = obj(arr(unwrap(p.statements[0]!.stmt)?.[1]['targetList'])[0]);
  const val = obj(unwrap(target)?.[1]['val']);
  return constString(val);
}

/**
 * Code that is not SQL (a PL/pgSQL body): by its tokens. A string constant is a secret when one
 * of the three tokens before it is `PASSWORD`, `CONNECTION` or a password-like name or string,
 * when it sits in the parentheses of a `dblink_connect` call, or by its value (a connection
 * string, or text with secrets inside).
 */
function redactTokens(text: string, depth: number): { text: string; found: readonly string[] } | null {
  const tokens = scan(text);
  const edits: Edit[] = [];
  const found = new Set<string>();
  let dblinkDepth = 0; // parenthesis depth inside a dblink_connect call, 0 = outside
  let pendingDblink = false;
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    const lower = t.text.toLowerCase().replace(/^"|"$/g, '');
    if (t.text === '(') {
      if (pendingDblink) dblinkDepth = 1;
      else if (dblinkDepth > 0) dblinkDepth++;
      pendingDblink = false;
      continue;
    }
    if (t.text === ')' && dblinkDepth > 0) {
      dblinkDepth--;
      continue;
    }
    pendingDblink = /(^|\.)dblink_connect(_u)?$/.test(lower);
    if (tokenKind(t) !== 'string') {
      // `PGPASSWORD=x` (a shell command), `password = x`, `v_secret := x`: whatever follows a credential-like name and `=`.
      const op = tokens[i - 1]?.text;
      const name = tokens[i - 2];
      if ((op === '=' || op === ':=') && name && tokenKind(name) === 'other' && /^[\p{L}_"]/u.test(name.text) && isSecretName(name.text.replace(/^"|"$/g, '')) && t.text !== '(') {
        edits.push({ start: t.start, end: t.end, with: REDACTED });
        found.add('secret in code');
      }
      continue;
    }
    let end = t.end;
    if (/^u&/i.test(t.text) && tokens[i + 1]?.text.toUpperCase() === 'UESCAPE' && tokens[i + 2]) end = tokens[i + 2]!.end;
    const tokenText = sliceBytes(text, t.start, end);
    const value = decodeToken(tokenText);
    const before = tokens.slice(Math.max(0, i - 3), i);
    const byPlace =
      dblinkDepth > 0 ||
      before.some((b) => {
        const w = b.text.toLowerCase().replace(/^"|"$/g, '');
        if (b.keyword && (w === 'password' || w === 'connection')) return true;
        if (tokenKind(b) === 'string') return isSecretName(decodeToken(b.text) ?? '');
        return tokenKind(b) === 'other' && /^[\p{L}_"]/u.test(b.text) && isSecretName(w);
      });
    if (value === undefined || byPlace) {
      edits.push({ start: t.start, end, with: REDACTED });
      found.add(dblinkDepth > 0 ? 'dblink connection' : 'secret in code');
      continue;
    }
    const inner = depth < MAX_DEPTH ? redactNested(value, depth + 1) : mayCarrySecret(value) ? { text: '<redacted>', found: ['nested text'] } : null;
    if (inner) {
      edits.push({ start: t.start, end, with: quoteLike(t.text, inner.text) });
      for (const f of inner.found) found.add(f);
    }
  }
  if (edits.length === 0) return null;
  // Token offsets are UTF-8 bytes.
  const buf = Buffer.from(text, 'utf8');
  const parts: Buffer[] = [];
  let at = 0;
  for (const e of edits) {
    if (e.start < at) continue;
    parts.push(buf.subarray(at, e.start), Buffer.from(e.with, 'utf8'));
    at = e.end;
  }
  parts.push(buf.subarray(at));
  return { text: Buffer.concat(parts).toString('utf8'), found: [...found] };
}

/**
 * A catalog definition (JSON, as the audit's `schema.change` records it) with the same secrets
 * redacted: SQL texts (`pg_get_functiondef`, view and index definitions, expressions) as
 * statements; `name=value` option entries (reloptions, a foreign table's options) whose name is
 * password-like or whose value is a connection string with a password; other strings by their
 * tokens. Returns `value` itself when nothing is redacted.
 */
export function redactJsonSecrets<T>(value: T): T {
  return redactJson(value, 0) as T;
}

function redactJson(value: unknown, depth: number): unknown {
  if (typeof value === 'string') return redactDefinitionText(value);
  if (depth > 32 || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) {
    let changed = false;
    const out = value.map((v) => {
      const r = redactJson(v, depth + 1);
      if (r !== v) changed = true;
      return r;
    });
    return changed ? out : value;
  }
  let out: Record<string, unknown> | undefined;
  for (const [k, v] of Object.entries(value)) {
    const r = redactJson(v, depth + 1);
    if (r !== v) (out ??= { ...(value as Record<string, unknown>) })[k] = r;
  }
  return out ?? value;
}

function redactDefinitionText(text: string): string {
  if (!mayCarrySecret(text)) return text;
  const option = /^([A-Za-z_][A-Za-z0-9_.]*)=([\s\S]*)$/.exec(text);
  if (option && (isSecretName(option[1]!) || isSecretConnectionString(option[2]!))) return `${option[1]}=<redacted>`;
  try {
    if (parseStatements(text).ok) return redactSecrets(text)?.text ?? text;
    const expr = parseStatements(`SELECT ${text}`);
    if (expr.ok) {
      const r = redactSecrets(`SELECT ${text}`);
      return r ? (r.text.startsWith('SELECT ') ? r.text.slice(7) : '<redacted>') : text;
    }
    return redactNested(text, 0)?.text ?? text;
  } catch {
    return '<redacted>';
  }
}
