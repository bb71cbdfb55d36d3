/**
 * Identity propagation to the upstream session: Warden starts every upstream
 * session with `warden.identity`, `warden.kind`, `warden.groups` (and
 * `warden.on_behalf_of` when known) as session settings, so Row Level Security
 * policies and triggers can use `current_setting('warden.identity')`; and it
 * prefixes `application_name` with the identity, so pg_stat_activity and the
 * server log show who is behind each backend. Pure.
 *
 * The client cannot change these: `warden.*` settings from the client are
 * consumed by Warden (never forwarded), and SET/RESET/set_config of
 * `warden.*`, RESET ALL and DISCARD ALL are refused by session safety.
 */
import type { IdentityConfig } from '../../config/types.js';
import { formatStartupOptions } from '../../wire/index.js';

/** PostgreSQL truncates names to NAMEDATALEN - 1 bytes. */
const MAX_APPLICATION_NAME = 63;

export function identitySettings(identity: IdentityConfig, onBehalfOf?: string): [string, string][] {
  const out: [string, string][] = [
    ['warden.identity', identity.name],
    ['warden.kind', identity.kind],
    ['warden.groups', identity.groups.join(',')],
  ];
  if (onBehalfOf) out.push(['warden.on_behalf_of', onBehalfOf]);
  // The session's role from the start: SET ROLE / RESET ROLE / RESET ALL are refused by
  // the session-safety rule, and a RESET would come back to this value anyway.
  if (identity.role) out.push(['role', identity.role]);
  return out;
}

/** `warden:<identity>` or `warden:<identity>:<client's application_name>`, cut to 63 bytes. */
export function prefixedApplicationName(identity: string, clientName: string | undefined): string {
  let s = clientName ? `warden:${identity}:${clientName}` : `warden:${identity}`;
  while (Buffer.byteLength(s, 'utf8') > MAX_APPLICATION_NAME) s = s.slice(0, -1);
  return s;
}

/**
 * The startup parameters for the upstream: the client's (minus what Warden
 * consumes), its `-c` options, and the identity settings last (they win).
 */
export function upstreamStartupParams(
  clientParams: ReadonlyMap<string, string>,
  optionSettings: readonly [string, string][],
  identity: IdentityConfig,
  onBehalfOf?: string,
): Map<string, string> {
  const out = new Map(clientParams);
  out.set('application_name', prefixedApplicationName(identity.name, clientParams.get('application_name')));
  const opts = formatStartupOptions([...optionSettings, ...identitySettings(identity, onBehalfOf)]);
  out.set('options', opts);
  return out;
}
