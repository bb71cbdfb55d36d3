/**
 * Collects the bytes to send to one peer while a chunk is processed, merging
 * adjacent ranges of the same memory without allocating (whatever view objects
 * they arrive as), so one incoming chunk usually costs one outgoing write of
 * one view.
 */
export class Outbox {
  private parts: Buffer[] = [];
  private size = 0;
  // The current contiguous run: absolute offsets into the memory of `runBuf`, until it must
  // become a view. Ranges of the run's own view object extend it without asking for their
  // ArrayBuffer (`.buffer` is a slow accessor, and the common case pushes ranges of one chunk).
  private runBuf: Buffer | null = null;
  private runStart = 0;
  private runEnd = 0;

  get length(): number {
    return this.size + (this.runBuf === null ? 0 : this.runEnd - this.runStart);
  }

  /** Append bytes [start, end) of `buf` (no copy). */
  pushRange(buf: Buffer, start: number, end: number): void {
    if (end <= start) return;
    const absStart = buf.byteOffset + start;
    const run = this.runBuf;
    if (run !== null && this.runEnd === absStart && (run === buf || run.buffer === buf.buffer)) {
      this.runEnd = absStart + (end - start);
      return;
    }
    this.sealRun();
    this.runBuf = buf;
    this.runStart = absStart;
    this.runEnd = absStart + (end - start);
  }

  push(b: Buffer): void {
    this.pushRange(b, 0, b.length);
  }

  private view(run: Buffer): Buffer {
    return Buffer.from(run.buffer, this.runStart, this.runEnd - this.runStart);
  }

  private sealRun(): void {
    const run = this.runBuf;
    if (run === null) return;
    const v = this.view(run);
    this.parts.push(v);
    this.size += v.length;
    this.runBuf = null;
  }

  /** Where the bytes are in the buffer the last takeRange() returned: [rangeStart, rangeEnd). */
  rangeStart = 0;
  rangeEnd = 0;

  /**
   * Take everything collected as bytes [rangeStart, rangeEnd) of the returned
   * buffer (null when empty): no view is made when it is one run of one buffer,
   * the common case of a chunk relayed whole.
   */
  takeRange(): Buffer | null {
    const run = this.runBuf;
    if (this.parts.length === 0 && run !== null) {
      const start = this.runStart - run.byteOffset;
      const end = this.runEnd - run.byteOffset;
      // A run may have grown past its first view (ranges of other views of the same memory).
      if (start >= 0 && end <= run.length) {
        this.runBuf = null;
        this.rangeStart = start;
        this.rangeEnd = end;
        return run;
      }
    }
    const out = this.take();
    this.rangeStart = 0;
    this.rangeEnd = out === null ? 0 : out.length;
    return out;
  }

  /** Take everything collected as one buffer (null when empty). */
  take(): Buffer | null {
    if (this.parts.length === 0) {
      const run = this.runBuf;
      if (run === null) return null;
      this.runBuf = null;
      return this.view(run);
    }
    this.sealRun();
    const out = this.parts.length === 1 ? this.parts[0] : Buffer.concat(this.parts, this.size);
    this.parts = [];
    this.size = 0;
    return out;
  }
}
