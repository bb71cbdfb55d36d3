/**
 * One-dimensional PostgreSQL array literals in text format: `{a,"b c",NULL}`.
 *
 * Multi-dimensional arrays and explicit bounds (`[0:1]={...}`) are not parsed (undefined):
 * the caller then sends NULL rather than guess.
 */

/** The elements (null = SQL NULL), or undefined when `text` is not a 1-D array literal. */
export function parseArrayLiteral(text: string): (string | null)[] | undefined {
  if (text.length < 2 || text[0] !== '{' || text[text.length - 1] !== '}') return undefined;
  if (text === '{}') return [];
  const items: (string | null)[] = [];
  let i = 1;
  for (;;) {
    if (text[i] === '"') {
      let value = '';
      let j = i + 1;
      for (; j < text.length && text[j] !== '"'; j++) {
        if (text[j] === '\\') j++;
        value += text[j] ?? '';
      }
      if (j >= text.length) return undefined;
      items.push(value);
      i = j + 1;
    } else if (text[i] === '{') {
      return undefined;
    } else {
      let value = '';
      let j = i;
      for (; j < text.length - 1 && text[j] !== ',' && text[j] !== '}'; j++) {
        if (text[j] === '"' || text[j] === '{') return undefined;
        if (text[j] === '\\') j++;
        value += text[j] ?? '';
      }
      value = value.trim();
      if (value === '') return undefined;
      items.push(value.toUpperCase() === 'NULL' && !text.slice(i, j).includes('\\') ? null : value);
      i = j;
    }
    if (text[i] === '}' && i === text.length - 1) return items;
    if (text[i] !== ',') return undefined;
    i++;
  }
}

/** A 1-D array literal; every non-NULL element is quoted (valid for every element type). */
export function formatArrayLiteral(items: readonly (string | null)[]): string {
  return `{${items.map((v) => (v === null ? 'NULL' : `"${v.replace(/["\\]/g, '\\$&')}"`)).join(',')}}`;
}
