/**
 * Reading a client's SQL text as PostgreSQL will read it.
 *
 * PostgreSQL converts every Query and Parse text from the session's
 * `client_encoding` to the server encoding when the message arrives, and its
 * lexer honours `standard_conforming_strings`. Warden's parser (libpg-query)
 * lexes UTF-8 with standard_conforming_strings on. When the session's settings
 * differ, the same bytes can be one statement to Warden and two to
 * PostgreSQL: in BIG5, `E'\xa4\x5c'` is one character (so the quote after it
 * closes the string); with standard_conforming_strings off, `'a\'` does not
 * end at the second quote.
 *
 * The rule, as an allowlist. A text is analysed only when Warden reads it
 * exactly as PostgreSQL will:
 *  1. it is ASCII with no backslash: every ASCII-compatible encoding (all of
 *     PostgreSQL's client encodings are) and either setting of
 *     standard_conforming_strings read it the same way; or
 *  2. the session's lexing settings are settled (no change to them may be in
 *     flight), and
 *     - standard_conforming_strings is on, or the text has no backslash; and
 *     - the text is ASCII, or client_encoding is one Warden decodes exactly
 *       (UTF8, SQL_ASCII, or a legacy encoding with a WHATWG decoder, run in
 *       fatal mode: a byte sequence it cannot decode is refused), or the
 *       server encoding is SQL_ASCII (PostgreSQL then converts nothing and
 *       rejects non-ASCII text in ASCII-unsafe client encodings).
 * Anything else is refused with an error that says why.
 *
 * "Settled": the values reported by the upstream (ParameterStatus) are those
 * PostgreSQL will use for the next message. A statement that may change them
 * (SET client_encoding, set_config, RESET ALL, an opaque call, ...) unsettles
 * them until the session is idle again (ReadyForQuery, outside a transaction
 * block, nothing else in flight): a transaction that set them may still roll
 * back, and a pipelined message is converted with whatever is in force when
 * it arrives.
 *
 * Pure: the session feeds it the upstream's parameters and its own
 * observations; no I/O.
 */
import { TextDecoder } from 'node:util';

/** Why a text cannot be read as PostgreSQL will read it: the error the client gets. */
export interface UnreadableText {
  readonly code: string;
  readonly message: string;
  readonly detail?: string;
  readonly hint?: string;
}

/** PostgreSQL client encodings Warden decodes, by PostgreSQL's name, with the decoder's label. */
const DECODERS: Readonly<Record<string, string>> = {
  // Single-byte encodings. LATIN1 is decoded by Buffer's latin1 (exact ISO 8859-1; WHATWG's
  // "iso-8859-1" is windows-1252).
  LATIN2: 'iso-8859-2',
  LATIN3: 'iso-8859-3',
  LATIN4: 'iso-8859-4',
  LATIN5: 'windows-1254',
  LATIN6: 'iso-8859-10',
  LATIN7: 'iso-8859-13',
  LATIN8: 'iso-8859-14',
  LATIN9: 'iso-8859-15',
  ISO_8859_5: 'iso-8859-5',
  ISO_8859_6: 'iso-8859-6',
  ISO_8859_7: 'iso-8859-7',
  ISO_8859_8: 'iso-8859-8',
  KOI8R: 'koi8-r',
  KOI8U: 'koi8-u',
  WIN866: 'ibm866',
  WIN874: 'windows-874',
  WIN1250: 'windows-1250',
  WIN1251: 'windows-1251',
  WIN1252: 'windows-1252',
  WIN1253: 'windows-1253',
  WIN1254: 'windows-1254',
  WIN1255: 'windows-1255',
  WIN1256: 'windows-1256',
  WIN1257: 'windows-1257',
  WIN1258: 'windows-1258',
  // Multi-byte encodings. BIG5, GBK, GB18030, SJIS and UHC have ASCII bytes (0x40-0x7E, including
  // backslash) as second bytes: only an exact decoder reads them right.
  BIG5: 'big5',
  GBK: 'gbk',
  GB18030: 'gb18030',
  SJIS: 'shift_jis',
  UHC: 'euc-kr',
  EUC_JP: 'euc-jp',
  EUC_KR: 'euc-kr',
  EUC_CN: 'gbk',
};

/** PostgreSQL's aliases (pg_char_to_encoding accepts these); the server reports the canonical name. */
const ALIASES: Readonly<Record<string, string>> = {
  UNICODE: 'UTF8',
  UTF_8: 'UTF8',
  ALT: 'WIN866',
  WIN: 'WIN1251',
  ABC: 'WIN1258',
  TCVN: 'WIN1258',
  TCVN5712: 'WIN1258',
  VSCII: 'WIN1258',
  KOI8: 'KOI8R',
  MSKANJI: 'SJIS',
  SHIFTJIS: 'SJIS',
  WIN932: 'SJIS',
  WIN936: 'GBK',
  WIN949: 'UHC',
  WIN950: 'BIG5',
  ISO88591: 'LATIN1',
  ISO88592: 'LATIN2',
  ISO88593: 'LATIN3',
  ISO88594: 'LATIN4',
  ISO88599: 'LATIN5',
  ISO885910: 'LATIN6',
  ISO885913: 'LATIN7',
  ISO885914: 'LATIN8',
  ISO885915: 'LATIN9',
  ISO885916: 'LATIN10',
  ISO_8859_1: 'LATIN1',
  ISO_8859_2: 'LATIN2',
  ISO_8859_3: 'LATIN3',
  ISO_8859_4: 'LATIN4',
  ISO_8859_9: 'LATIN5',
  ISO_8859_10: 'LATIN6',
  ISO_8859_13: 'LATIN7',
  ISO_8859_14: 'LATIN8',
  ISO_8859_15: 'LATIN9',
  ISO_8859_16: 'LATIN10',
  ISO88595: 'ISO_8859_5',
  ISO88596: 'ISO_8859_6',
  ISO88597: 'ISO_8859_7',
  ISO88598: 'ISO_8859_8',
  CP866: 'WIN866',
  CP874: 'WIN874',
  CP1250: 'WIN1250',
  CP1251: 'WIN1251',
  CP1252: 'WIN1252',
  CP1253: 'WIN1253',
  CP1254: 'WIN1254',
  CP1255: 'WIN1255',
  CP1256: 'WIN1256',
  CP1257: 'WIN1257',
  CP1258: 'WIN1258',
  CP932: 'SJIS',
  CP936: 'GBK',
  CP949: 'UHC',
  CP950: 'BIG5',
};

/**
 * PostgreSQL's canonical name for an encoding name as a client may write it
 * (`utf-8`, `Latin1`, `sjis`): upper case, with `-` as `_`, aliases resolved.
 * PostgreSQL itself ignores case and non-alphanumerics when it looks names up.
 */
export function canonicalEncoding(name: string): string {
  const up = name.trim().toUpperCase().replace(/-/g, '_');
  const squeezed = up.replace(/[^A-Z0-9]/g, '');
  return ALIASES[up] ?? ALIASES[squeezed] ?? (squeezed === 'UTF8' ? 'UTF8' : squeezed === 'SQLASCII' ? 'SQL_ASCII' : up);
}

/** Whether Warden can read non-ASCII text in this client encoding exactly. */
export function isDecodableEncoding(name: string): boolean {
  const e = canonicalEncoding(name);
  return e === 'UTF8' || e === 'SQL_ASCII' || e === 'LATIN1' || DECODERS[e] !== undefined;
}

/** The settings that change how PostgreSQL lexes a text (lower case, as in SET). */
export const LEXING_SETTINGS: ReadonlySet<string> = new Set(['client_encoding', 'standard_conforming_strings', 'names']);

const decoders = new Map<string, TextDecoder>();

function decoderFor(label: string): TextDecoder {
  let d = decoders.get(label);
  if (!d) {
    d = new TextDecoder(label, { fatal: true });
    decoders.set(label, d);
  }
  return d;
}

/** True when bytes [start, end) are all ASCII and contain no backslash. */
function plainAscii(buf: Buffer, start: number, end: number): boolean {
  for (let i = start; i < end; i++) {
    const c = buf[i];
    if (c >= 0x80 || c === 0x5c) return false;
  }
  return true;
}

/**
 * The length of the character at `buf[i]` as PostgreSQL's pg_encoding_mblen
 * counts it for the multi-byte client encodings Warden decodes (1 elsewhere).
 */
function pgCharLength(enc: string, buf: Buffer, i: number): number {
  const c = buf[i];
  if (c < 0x80) return 1;
  switch (enc) {
    case 'BIG5':
    case 'GBK':
    case 'UHC':
    case 'EUC_KR':
    case 'EUC_CN':
      return 2;
    case 'SJIS':
      return c >= 0xa1 && c <= 0xdf ? 1 : 2;
    case 'GB18030':
      return buf[i + 1] >= 0x30 && buf[i + 1] <= 0x39 ? 4 : 2;
    case 'EUC_JP':
      return c === 0x8f ? 3 : 2;
    default:
      return 1;
  }
}

/**
 * Whether the decoder and PostgreSQL agree on every ASCII character of the
 * text. Only ASCII characters are structure to PostgreSQL's lexer (quotes,
 * backslashes, semicolons, comment marks, delimiters); every other character is
 * part of an identifier, a string or a comment to both. So when the sequences
 * of standalone ASCII characters are equal, both see the same tokens. A
 * decoder that reads a lead byte alone where PostgreSQL reads it with the ASCII
 * byte after it fails this check.
 */
function sameAsciiStructure(enc: string, buf: Buffer, start: number, end: number, decoded: string): boolean {
  let j = 0;
  const n = decoded.length;
  for (let i = start; i < end; ) {
    const len = pgCharLength(enc, buf, i);
    if (len === 1 && buf[i] < 0x80) {
      while (j < n && decoded.charCodeAt(j) >= 0x80) j++;
      if (j >= n || decoded.charCodeAt(j) !== buf[i]) return false;
      j++;
    }
    i += len;
  }
  while (j < n && decoded.charCodeAt(j) >= 0x80) j++;
  return j === n;
}

function hasHighBit(buf: Buffer, start: number, end: number): boolean {
  for (let i = start; i < end; i++) if (buf[i] >= 0x80) return true;
  return false;
}

export class ClientText {
  /** Canonical client encoding as the upstream reported it (UTF8 until it says otherwise). */
  private encoding = 'UTF8';
  private serverEncoding = 'UTF8';
  private conforming = true;
  private unsettled = false;
  /**
   * True when texts are read as plain UTF-8 with no checks: the common case, decided
   * once per change instead of per message.
   */
  fast = true;
  /** Changes whenever the way texts are read may have changed (for caches of decoded texts). */
  epoch = 0;

  /** `parameters`: the upstream's ParameterStatus values when the session starts (settled). */
  constructor(parameters?: ReadonlyMap<string, string>) {
    if (parameters) this.take(parameters);
    this.recompute();
  }

  /**
   * Take the upstream's reported settings (after a ParameterStatus). A change
   * unsettles: it may belong to a transaction that can still roll back.
   */
  update(parameters: ReadonlyMap<string, string>): void {
    if (!this.take(parameters)) return;
    this.unsettled = true;
    this.recompute();
  }

  /** Whether anything changed. */
  private take(parameters: ReadonlyMap<string, string>): boolean {
    const enc = canonicalEncoding(parameters.get('client_encoding') ?? 'UTF8');
    const server = canonicalEncoding(parameters.get('server_encoding') ?? 'UTF8');
    const scs = (parameters.get('standard_conforming_strings') ?? 'on').toLowerCase() !== 'off';
    if (enc === this.encoding && server === this.serverEncoding && scs === this.conforming) return false;
    this.encoding = enc;
    this.serverEncoding = server;
    this.conforming = scs;
    return true;
  }

  /** A statement that may change the lexing settings is about to run. */
  mayChange(): void {
    if (this.unsettled) return;
    this.unsettled = true;
    this.recompute();
  }

  /** The session is idle (no transaction block, nothing in flight): the reported settings are in force. */
  settle(): void {
    if (!this.unsettled) return;
    this.unsettled = false;
    this.recompute();
  }

  get isSettled(): boolean {
    return !this.unsettled;
  }

  get clientEncoding(): string {
    return this.encoding;
  }

  get standardConformingStrings(): boolean {
    return this.conforming;
  }

  private recompute(): void {
    this.epoch++;
    this.fast = !this.unsettled && this.conforming && (this.encoding === 'UTF8' || this.encoding === 'SQL_ASCII' || this.serverEncoding === 'SQL_ASCII');
  }

  /**
   * Bytes [start, end) of `buf` (a NUL-free SQL text) as PostgreSQL will read
   * them, or why Warden cannot be sure how it will.
   */
  read(buf: Buffer, start: number, end: number): string | UnreadableText {
    if (this.fast || plainAscii(buf, start, end)) return buf.toString('utf8', start, end);
    if (this.unsettled) {
      return {
        code: '0A000',
        message:
          'Warden cannot be sure how PostgreSQL will read this statement: a change to client_encoding or standard_conforming_strings may be in effect, and the statement has non-ASCII characters or a backslash',
        detail: `The last settled values: client_encoding ${this.encoding}, standard_conforming_strings ${this.conforming ? 'on' : 'off'}. A change settles when the session is idle outside a transaction block.`,
        hint: 'Send the statement again once the change is settled, or change these settings only outside transaction blocks.',
      };
    }
    const backslash = buf.indexOf(0x5c, start);
    if (!this.conforming && backslash >= 0 && backslash < end) {
      return {
        code: '0A000',
        message: 'statements with a backslash are not accepted through Warden while standard_conforming_strings is off',
        detail: "With standard_conforming_strings off, PostgreSQL reads a backslash in '...' as an escape; Warden's parser reads it as SQL standard strings do, so it could not be sure where a string ends.",
        hint: "SET standard_conforming_strings = on (the default), or write escapes as E'...' strings.",
      };
    }
    const enc = this.encoding;
    if (enc === 'UTF8' || enc === 'SQL_ASCII' || this.serverEncoding === 'SQL_ASCII') return buf.toString('utf8', start, end);
    if (!hasHighBit(buf, start, end)) return buf.toString('utf8', start, end);
    if (enc === 'LATIN1') return buf.toString('latin1', start, end);
    const label = DECODERS[enc];
    if (label === undefined) {
      return {
        code: '0A000',
        message: `Warden cannot read non-ASCII text in client_encoding ${enc}`,
        detail: 'Warden analyses each statement as PostgreSQL will read it, and has no exact decoder for this encoding.',
        hint: "Use client_encoding 'UTF8', or write the statement in ASCII only.",
      };
    }
    let decoded: string;
    try {
      decoded = decoderFor(label).decode(buf.subarray(start, end));
    } catch {
      return { code: '22021', message: `invalid byte sequence for encoding "${enc}"` };
    }
    if (!sameAsciiStructure(enc, buf, start, end, decoded)) {
      return {
        code: '0A000',
        message: `Warden cannot be sure how PostgreSQL will read this statement in client_encoding ${enc}`,
        detail: "Warden's decoder and PostgreSQL split a multi-byte character differently around an ASCII byte.",
        hint: "Use client_encoding 'UTF8'.",
      };
    }
    return decoded;
  }
}
