/**
 * Who may use the web console and what the console shows them: pure functions of the running
 * configuration (read again on every request, so a reload applies at once).
 */
import type { IdentityConfig, WardenConfig } from '../config/types.js';

type AccessConfig = Pick<WardenConfig, 'admin' | 'rules' | 'limits'>;

/** The groups that approve something: `rules[].approvers.groups` and `limits[].approvers.groups`. */
export function approverGroups(c: Pick<WardenConfig, 'rules' | 'limits'>): string[] {
  const out = new Set<string>();
  for (const r of c.rules) for (const g of r.approvers?.groups ?? []) out.add(g);
  for (const l of c.limits ?? []) for (const g of l.approvers?.groups ?? []) out.add(g);
  return [...out];
}

/** `admin.console.groups`, or by default `admin.operators`, `admin.auditors` and the approver groups. */
export function consoleGroups(c: AccessConfig): string[] {
  const configured = c.admin?.console?.groups;
  if (configured) return [...configured];
  return [...new Set([...(c.admin?.operators ?? []), ...(c.admin?.auditors ?? []), ...approverGroups(c)])];
}

export function inAny(identity: Pick<IdentityConfig, 'groups'>, groups: readonly string[]): boolean {
  return identity.groups.some((g) => groups.includes(g));
}

/** Why this identity may not use the console, or undefined when it may. */
export function consoleRefusal(c: AccessConfig, identity: IdentityConfig): string | undefined {
  if (c.admin?.console?.enabled === false) return 'the web console is turned off (admin.console.enabled: false)';
  const groups = consoleGroups(c);
  if (inAny(identity, groups)) return undefined;
  return groups.length === 0
    ? `identity ${identity.name} may not use the web console: no group may (set admin.console.groups, or admin.operators / admin.auditors)`
    : `identity ${identity.name} may not use the web console: it needs membership of one of the groups ${groups.join(', ')} (${c.admin?.console?.groups ? 'admin.console.groups' : 'by default admin.operators, admin.auditors and the approver groups; set admin.console.groups to choose'})`;
}

/** What the console offers this identity (the API decides again on every call). */
export interface ConsoleCapabilities {
  operate: boolean;
  audit: boolean;
  approve: boolean;
}

export function capabilitiesOf(c: AccessConfig, identity: IdentityConfig): ConsoleCapabilities {
  return {
    operate: inAny(identity, c.admin?.operators ?? []),
    audit: inAny(identity, c.admin?.auditors ?? []),
    approve: inAny(identity, approverGroups(c)),
  };
}

/**
 * A preHandler that lets members of `groups()` through and answers 403 to anyone else, naming
 * the groups and the configuration keys that list them.
 */
export function requireGroups(groups: () => readonly string[], what: string, keys: string) {
  return async (req: import('fastify').FastifyRequest, reply: import('fastify').FastifyReply): Promise<void> => {
    const g = groups();
    if (req.identity && inAny(req.identity, g)) return;
    await reply.code(403).send({
      error: g.length === 0 ? `${what} needs membership of a group listed in ${keys} (none is configured)` : `${what} needs membership of one of the groups ${g.join(', ')} (${keys})`,
    });
  };
}

/** The groups that may read the console's overview and policy pages: the console groups, operators and auditors. */
export function readerGroups(c: AccessConfig): string[] {
  return [...new Set([...consoleGroups(c), ...(c.admin?.operators ?? []), ...(c.admin?.auditors ?? [])])];
}
