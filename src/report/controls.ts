/**
 * Which controls each section of the report gives evidence for. The wording
 * matters: Warden's records are evidence an auditor may use for these controls;
 * the report never claims that a control is met or that anything is certified.
 */
import type { ControlRef } from './types.js';

export const DISCLAIMER =
  'Evidence, not certification: this report lists what Warden recorded in its audit log for the period. ' +
  'The controls named in each section are those the records can serve as evidence for; whether a control is designed and operating effectively, ' +
  'and whether an organisation complies with SOC 2, ISO/IEC 27001, HIPAA or PCI DSS, is for its auditor or assessor to decide. ' +
  'Nothing here is a certification, attestation or assessment.';

const c = (framework: ControlRef['framework'], id: string, evidence: string): ControlRef => ({ framework, id, evidence });

export const CONTROLS = {
  integrity: [
    c('ISO/IEC 27001:2022', 'A.8.15', 'logs are protected against tampering: hash chain and signed checkpoints verified for the period'),
    c('SOC 2', 'CC7.2', 'the monitoring record itself is shown to be complete and unaltered (or where it is not)'),
    c('HIPAA', '164.312(b)', 'audit controls: the activity record is tamper-evident'),
    c('PCI DSS v4.0', '10.2', 'audit logs are complete for the period (10.3: protected from modification)'),
  ],
  sensitiveReads: [
    c('SOC 2', 'CC6.1', 'access to classified data is controlled (masked) and recorded per identity'),
    c('HIPAA', '164.312(b)', 'activity in systems containing sensitive data is recorded and examined'),
    c('PCI DSS v4.0', '10.2', '10.2.1.1: individual user access to classified data is logged'),
    c('ISO/IEC 27001:2022', 'A.8.15', 'who accessed which data, when'),
  ],
  refusals: [
    c('SOC 2', 'CC6.1', 'access that policy does not permit is refused'),
    c('SOC 2', 'CC6.3', 'authorisation rules are enforced per identity and role'),
    c('SOC 2', 'CC7.2', 'refused attempts are recorded for monitoring'),
    c('ISO/IEC 27001:2022', 'A.8.16', 'anomalous and refused activity is monitored'),
    c('PCI DSS v4.0', '10.2', '10.2.1.4: invalid logical access attempts (refused statements, failed logins) are logged'),
  ],
  approvals: [
    c('SOC 2', 'CC6.2', 'access is granted only after authorisation by a named approver'),
    c('SOC 2', 'CC6.3', 'segregation: requesters cannot approve their own requests'),
    c('SOC 2', 'CC8.1', 'changes are authorised before they run, with a recorded reason'),
  ],
  limits: [
    c('SOC 2', 'CC7.2', 'unusual volume or rate of access is detected and stopped'),
    c('ISO/IEC 27001:2022', 'A.8.16', 'activity beyond set thresholds is monitored and acted on'),
  ],
  schemaChanges: [
    c('SOC 2', 'CC8.1', 'changes to database structure are recorded with before/after definitions, who and why'),
    c('ISO/IEC 27001:2022', 'A.8.15', 'administrative changes are logged'),
    c('PCI DSS v4.0', '10.2', '10.2.1.2 / 10.2.1.5: administrative actions and changes to system objects are logged'),
  ],
  agents: [
    c('SOC 2', 'CC6.1', 'non-human (AI agent) access is identified and attributable to the person it acts for'),
    c('SOC 2', 'CC6.3', 'agents act under their own identity and rules'),
    c('ISO/IEC 27001:2022', 'A.8.15', 'agent activity is logged like any user activity'),
    c('HIPAA', '164.312(b)', 'activity by automated actors is recorded'),
  ],
  missingIntent: [
    c('SOC 2', 'CC8.1', 'changes that must name a ticket or reason are shown when they did not'),
    c('SOC 2', 'CC6.3', 'purpose-bound access rules are enforced'),
  ],
  privileged: [
    c('SOC 2', 'CC6.3', 'use of privileged groups is visible per identity'),
    c('PCI DSS v4.0', '10.2', '10.2.1.2: all actions by individuals with administrative access are logged'),
    c('ISO/IEC 27001:2022', 'A.8.15', 'privileged activity is logged'),
  ],
  operations: [
    c('SOC 2', 'CC6.2', 'access is removed promptly: identity suspensions and session kills with who and why'),
    c('SOC 2', 'CC7.2', 'operator responses to events are recorded'),
    c('SOC 2', 'CC8.1', 'configuration (policy) changes are recorded with their hashes'),
    c('ISO/IEC 27001:2022', 'A.8.15', 'operator actions are logged'),
    c('PCI DSS v4.0', '10.2', '10.2.1.6 / 10.2.1.7: changes to the logging and security configuration are logged'),
  ],
} as const satisfies Record<string, readonly ControlRef[]>;

export type SectionId = keyof typeof CONTROLS;

export function controlsOf(id: SectionId): ControlRef[] {
  return [...CONTROLS[id]];
}
