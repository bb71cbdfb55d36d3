/**
 * A PostgreSQL URL for Warden's own stores (audit, state): a description safe
 * to show (no password, no query string) and an error factory that takes every
 * form of the password out of a message.
 */
export interface PgUrlInfo {
  /** `postgres://user@host:port/db` */
  readonly description: string;
  /** An Error about `what` with the cause's message, password redacted (the cause is not attached). */
  error(what: string, cause: unknown): Error;
}

/** `label` names the store in messages, e.g. `postgres audit store`. */
export function parsePgUrl(url: string, label: string): PgUrlInfo {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error(`${label}: invalid URL (expected postgres://user:password@host:port/db)`);
  }
  if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') {
    throw new Error(`${label}: invalid URL scheme ${JSON.stringify(u.protocol)} (expected postgres://)`);
  }
  const secrets = new Set<string>();
  const add = (s: string | null): void => {
    if (!s) return;
    secrets.add(s);
    try {
      secrets.add(decodeURIComponent(s));
    } catch {
      // not percent-encoded
    }
  };
  add(u.password);
  add(u.searchParams.get('password'));
  const description = `${u.protocol}//${u.username ? `${u.username}@` : ''}${u.host}${u.pathname}`;
  const redact = (text: string): string => {
    let out = text;
    for (const s of [...secrets].sort((a, b) => b.length - a.length)) out = out.split(s).join('***');
    return out;
  };
  return {
    description,
    error(what: string, cause: unknown): Error {
      const msg = cause instanceof Error ? cause.message : String(cause);
      const err = new Error(redact(`${label} ${description}: ${what}: ${msg}`));
      const code = (cause as { code?: unknown } | null)?.code;
      if (typeof code === 'string') Object.assign(err, { code });
      return err;
    },
  };
}
