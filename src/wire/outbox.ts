/**
 * Collects the bytes to send to one peer while a chunk is processed, merging
 * adjacent ranges of the same memory without allocating (whatever view objects
 * they arrive as), so one incoming chunk usually costs one outgoing write of
 * one view.
 */
export class Outbox {
  private parts: Buffer[] = [];
  private size = 0;
  // The current contiguous run, as absolute offsets into one ArrayBuffer, until it must become a view.
  private runAB: ArrayBufferLike | null = null;
  private runStart = 0;
  private runEnd = 0;

  get length(): number {
    return this.size + (this.runEnd - this.runStart);
  }

  /** Append bytes [start, end) of `buf` (no copy). */
  pushRange(buf: Buffer, start: number, end: number): void {
    if (end <= start) return;
    const absStart = buf.byteOffset + start;
    if (this.runAB === buf.buffer && this.runEnd === absStart) {
      this.runEnd = absStart + (end - start);
      return;
    }
    this.sealRun();
    this.runAB = buf.buffer;
    this.runStart = absStart;
    this.runEnd = absStart + (end - start);
  }

  push(b: Buffer): void {
    this.pushRange(b, 0, b.length);
  }

  private view(): Buffer {
    return Buffer.from(this.runAB as ArrayBuffer, this.runStart, this.runEnd - this.runStart);
  }

  private sealRun(): void {
    if (!this.runAB) return;
    const v = this.view();
    this.parts.push(v);
    this.size += v.length;
    this.runAB = null;
  }

  /** Take everything collected as one buffer (null when empty). */
  take(): Buffer | null {
    if (this.parts.length === 0) {
      if (!this.runAB) return null;
      const v = this.view();
      this.runAB = null;
      return v;
    }
    this.sealRun();
    const out = this.parts.length === 1 ? this.parts[0] : Buffer.concat(this.parts, this.size);
    this.parts = [];
    this.size = 0;
    return out;
  }
}
