/** Public API of Warden's tamper-evident audit-log core (pure, no I/O). */
export { canonicalJson, type JsonPrimitive, type JsonValue } from './canonical.js';
export {
  type AuditRecord,
  type ChainHead,
  ChainWriter,
  type Checkpoint,
  GENESIS,
  hashRecord,
  keyIdOf,
  signCheckpoint,
  type VerifyOptions,
  type VerifyProblem,
  type VerifyProblemKind,
  type VerifyReport,
  verifyChain,
  verifyCheckpointSignature,
} from './chain.js';
