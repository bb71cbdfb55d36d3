/** Reaching Warden's own PostgreSQL listener from the MCP server. */

/** The host to connect to for a listener bound to `host` (a wildcard means this machine). */
export function connectHost(host: string): string {
  return host === '0.0.0.0' || host === '::' || host === '' ? '127.0.0.1' : host;
}

/** TLS towards the listener: when it offers TLS (`listen.tls`); certificates are verified unless it is this machine. */
export function sslFor(listenTls: boolean, host: string): false | { rejectUnauthorized: boolean } {
  if (!listenTls) return false;
  const local = host === '127.0.0.1' || host === '::1' || host === 'localhost';
  return { rejectUnauthorized: !local };
}
