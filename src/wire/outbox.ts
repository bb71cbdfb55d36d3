/**
 * Collects the bytes to send to one peer while a chunk is processed, merging
 * adjacent views, so one incoming chunk costs one outgoing write.
 */
export class Outbox {
  private parts: Buffer[] = [];
  private size = 0;

  get length(): number {
    return this.size;
  }

  push(b: Buffer): void {
    if (b.length === 0) return;
    const n = this.parts.length;
    if (n > 0) {
      const last = this.parts[n - 1];
      if (last.buffer === b.buffer && last.byteOffset + last.length === b.byteOffset) {
        this.parts[n - 1] = Buffer.from(last.buffer, last.byteOffset, last.length + b.length);
        this.size += b.length;
        return;
      }
    }
    this.parts.push(b);
    this.size += b.length;
  }

  /** Take everything collected as one buffer (null when empty). */
  take(): Buffer | null {
    const n = this.parts.length;
    if (n === 0) return null;
    const out = n === 1 ? this.parts[0] : Buffer.concat(this.parts, this.size);
    this.parts = [];
    this.size = 0;
    return out;
  }
}
