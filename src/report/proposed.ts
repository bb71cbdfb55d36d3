/**
 * A proposed policy for a backtest: YAML text with any of the policy sections
 * (`rules`, `default`, `sensitive`, `limits`, `approvals`), each replacing the
 * running configuration's; validated by the configuration's own schema, so a
 * proposal is refused for exactly what `warden config check` would refuse.
 */
import { parse as parseYaml, stringify } from 'yaml';
import { ConfigError, parseConfig } from '../config/load.js';
import type { WardenConfig } from '../config/types.js';
import type { ProposedPolicy } from './backtest.js';

export const POLICY_SECTIONS = ['rules', 'default', 'sensitive', 'limits', 'approvals'] as const;

export class ProposalError extends Error {}

/** What of the running configuration a proposal starts from. */
export type RunningPolicy = Pick<WardenConfig, 'rules' | 'default' | 'limits'> & Partial<Pick<WardenConfig, 'sensitive' | 'identities' | 'databases'>>;

export function proposedPolicy(running: RunningPolicy, text: string): ProposedPolicy {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new ProposalError(`policy: not YAML: ${(err as Error).message.split('\n')[0]}`);
  }
  if (doc === null || doc === undefined) doc = {};
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new ProposalError('policy: expected a YAML mapping with any of rules, default, sensitive, limits, approvals');
  const given = doc as Record<string, unknown>;
  for (const k of Object.keys(given)) {
    if (k === 'masking') throw new ProposalError('policy: there is no masking section: masking is set by mask rules (rules) and sensitive.maskers (sensitive)');
    if (!(POLICY_SECTIONS as readonly string[]).includes(k)) throw new ProposalError(`policy: unknown section "${k}" (a proposal may hold ${POLICY_SECTIONS.join(', ')})`);
  }
  const picked: Record<string, unknown> = { ...given };
  // The masking key never matters to a decision; left out, a ${VAR} in it needs no environment.
  if (picked.sensitive && typeof picked.sensitive === 'object' && !Array.isArray(picked.sensitive)) {
    const { key: _key, ...rest } = picked.sensitive as Record<string, unknown>;
    picked.sensitive = rest;
  }
  let parsed: WardenConfig;
  try {
    parsed = parseConfig(stringify({ version: 1, databases: { backtest: { upstream: 'postgres://backtest@127.0.0.1/backtest' } }, ...picked }), '<proposed policy>', {});
  } catch (err) {
    if (err instanceof ConfigError) throw new ProposalError(`policy: ${err.message.replace(/^<proposed policy>:?\s*/, '')}`);
    throw err;
  }
  return {
    rules: 'rules' in given ? parsed.rules : running.rules,
    default: 'default' in given ? parsed.default : running.default,
    sensitive: 'sensitive' in given ? parsed.sensitive : running.sensitive,
    limits: 'limits' in given ? parsed.limits : running.limits,
    identities: running.identities,
    databases: running.databases,
  };
}
