/**
 * Errors that end a client connection during startup, with the SQLSTATE and
 * message the client receives (as a FATAL ErrorResponse).
 */
export class FatalClientError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly detail?: string,
    readonly hint?: string,
  ) {
    super(message);
    this.name = 'FatalClientError';
  }
}
