/**
 * Rewrites the leaves of a JSON text in place: object keys, structure, whitespace, booleans
 * and nulls are kept byte for byte; string values and numbers go through callbacks.
 *
 * The text is validated with JSON.parse first; the scanner then only has to find token
 * boundaries. Numbers are handed over as their source text (no float round trip).
 */

/** `null` from a callback writes JSON null. */
export interface JsonLeafMaskers {
  string: (value: string) => string | null;
  number: (text: string) => string | null;
}

const NUMBER_TOKEN = /-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/y;

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;
}

/** End index (exclusive) of the string token starting at `i` (a `"`). */
function stringEnd(text: string, i: number): number {
  for (let j = i + 1; j < text.length; j++) {
    const c = text.charCodeAt(j);
    if (c === 0x5c) j++;
    else if (c === 0x22) return j + 1;
  }
  return text.length;
}

/** The rewritten JSON, or undefined when `text` is not valid JSON. */
export function rewriteJson(text: string, mask: JsonLeafMaskers): string | undefined {
  try {
    JSON.parse(text);
  } catch {
    return undefined;
  }
  let out = '';
  let i = 0;
  while (i < text.length) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      const end = stringEnd(text, i);
      let k = end;
      while (k < text.length && isSpace(text.charCodeAt(k))) k++;
      const token = text.slice(i, end);
      if (text[k] === ':') out += token;
      else {
        const masked = mask.string(JSON.parse(token) as string);
        out += masked === null ? 'null' : JSON.stringify(masked);
      }
      i = end;
    } else if (c === 0x2d || (c >= 0x30 && c <= 0x39)) {
      NUMBER_TOKEN.lastIndex = i;
      const m = NUMBER_TOKEN.exec(text);
      const token = m ? m[0] : text[i];
      const masked = mask.number(token);
      out += masked === null ? 'null' : masked;
      i += token.length;
    } else {
      // Structure, whitespace and the literals true/false/null (letters pass one by one).
      let j = i + 1;
      while (j < text.length) {
        const d = text.charCodeAt(j);
        if (d === 0x22 || d === 0x2d || (d >= 0x30 && d <= 0x39)) break;
        j++;
      }
      out += text.slice(i, j);
      i = j;
    }
  }
  return out;
}
