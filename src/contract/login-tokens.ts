/**
 * What the listener (proxy/connection/) needs of short-lived login tokens:
 * their SCRAM keys, checked in the same exchange as the identity's own
 * password. governance/tokens.ts's TokenService provides it; declared here so
 * that proxy/ imports nothing of governance/.
 */

/** One login token usable now: its id and the SCRAM keys of its secret. */
export interface TokenCredential {
  readonly id: string;
  readonly storedKey: Buffer;
  readonly serverKey: Buffer;
  readonly expiresAt: Date;
  readonly onBehalfOf?: string;
}

export interface LoginTokens {
  /** An identity's tokens usable now on this database. */
  credentials(identity: string, database: string): Promise<TokenCredential[]>;
}
