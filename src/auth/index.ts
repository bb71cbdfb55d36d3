/** Public API of Warden's pure authentication codecs (no I/O). */
export {
  type ChannelBinding,
  type ChannelBindingType,
  certificateSignatureOid,
  tlsServerEndPointBinding,
  tlsServerEndPointHash,
} from './channel-binding.js';
export { md5PasswordResponse } from './md5.js';
export { saslprep, scramPasswordBytes } from './saslprep.js';
export {
  DEFAULT_MAX_CLIENT_ITERATIONS,
  ScramClientExchange,
  type ScramClientFirst,
  type ScramClientOptions,
} from './scram-client.js';
export { SCRAM_SHA_256, SCRAM_SHA_256_PLUS } from './scram-common.js';
export {
  SCRAM_AUTH_FAILED,
  ScramServerExchange,
  type ScramServerFinalResult,
  type ScramServerFirstResult,
  type ScramServerOptions,
} from './scram-server.js';
export {
  SCRAM_DEFAULT_ITERATIONS,
  SCRAM_DEFAULT_SALT_LEN,
  checkScramPassword,
  formatScramVerifier,
  makeScramVerifier,
  mockScramVerifier,
  parseScramVerifier,
  type MakeScramVerifierOptions,
  type ScramVerifier,
} from './scram-verifier.js';
