/**
 * A histogram with fixed buckets for hot paths: `observe` is a few comparisons
 * and three additions (no allocation, no label lookup). The metrics registry
 * (admin/metrics.ts) reads it when it is scraped.
 */
export class FixedHistogram {
  /** Per bucket, not cumulative; the last one is +Inf. */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  /** `bounds`: upper bounds, ascending (seconds for durations). */
  constructor(readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length + 1);
  }

  observe(v: number): void {
    const b = this.bounds;
    let i = 0;
    while (i < b.length && v > b[i]!) i++;
    this.counts[i]++;
    this.sum += v;
    this.count++;
  }
}

/** Audit writes (a batch, or a turn's records under one fdatasync), seconds: 100 µs .. 10 s. */
export const AUDIT_WRITE_BUCKETS: readonly number[] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10];
