/**
 * Collects the bytes to send to one peer while a chunk is processed, merging
 * adjacent ranges of the same buffer without allocating, so one incoming
 * chunk usually costs one outgoing write of one view.
 */
export class Outbox {
  private parts: Buffer[] = [];
  private size = 0;
  // The current contiguous run, kept as numbers until it must become a view.
  private runBuf: Buffer | null = null;
  private runStart = 0;
  private runEnd = 0;

  get length(): number {
    return this.size + (this.runEnd - this.runStart);
  }

  /** Append bytes [start, end) of `buf` (no copy). */
  pushRange(buf: Buffer, start: number, end: number): void {
    if (end <= start) return;
    if (this.runBuf === buf && this.runEnd === start) {
      this.runEnd = end;
      return;
    }
    this.sealRun();
    this.runBuf = buf;
    this.runStart = start;
    this.runEnd = end;
  }

  push(b: Buffer): void {
    this.pushRange(b, 0, b.length);
  }

  private sealRun(): void {
    const rb = this.runBuf;
    if (!rb) return;
    const view = this.runStart === 0 && this.runEnd === rb.length ? rb : rb.subarray(this.runStart, this.runEnd);
    this.parts.push(view);
    this.size += view.length;
    this.runBuf = null;
  }

  /** Take everything collected as one buffer (null when empty). */
  take(): Buffer | null {
    if (this.parts.length === 0) {
      const rb = this.runBuf;
      if (!rb) return null;
      this.runBuf = null;
      return this.runStart === 0 && this.runEnd === rb.length ? rb : rb.subarray(this.runStart, this.runEnd);
    }
    this.sealRun();
    const out = this.parts.length === 1 ? this.parts[0] : Buffer.concat(this.parts, this.size);
    this.parts = [];
    this.size = 0;
    return out;
  }
}
