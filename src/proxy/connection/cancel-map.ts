/**
 * Warden hands each client its own BackendKeyData (pid, secret) and remembers
 * which session it belongs to, so a CancelRequest is routed to the right
 * upstream backend — and a client can only cancel its own statements.
 */
import crypto from 'node:crypto';

export interface Cancelable {
  /** Forward a cancel to this session's upstream backend. */
  cancel(): void;
}

export class CancelMap {
  private readonly byPid = new Map<number, { secret: Buffer; target: Cancelable }>();

  /** Register a session; returns the key to send to its client. */
  register(target: Cancelable): { pid: number; secret: Buffer } {
    let pid: number;
    do pid = crypto.randomInt(1, 0x7fffffff);
    while (this.byPid.has(pid));
    const secret = crypto.randomBytes(4);
    this.byPid.set(pid, { secret, target });
    return { pid, secret };
  }

  unregister(pid: number): void {
    this.byPid.delete(pid);
  }

  /** Route a CancelRequest. Returns whether it matched a live session. */
  cancel(pid: number, secret: Buffer): boolean {
    const e = this.byPid.get(pid);
    if (!e || e.secret.length !== secret.length || !crypto.timingSafeEqual(e.secret, secret)) return false;
    e.target.cancel();
    return true;
  }

  get size(): number {
    return this.byPid.size;
  }
}
