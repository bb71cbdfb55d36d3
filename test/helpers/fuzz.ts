/**
 * Settings shared by the property-based (fast-check) tests.
 *
 * - `WARDEN_FUZZ_SEED`: replay a run (fast-check prints the seed and the
 *   counterexample's path on failure; pass both back with WARDEN_FUZZ_PATH).
 * - `WARDEN_FUZZ_SCALE`: multiply every test's number of cases (default 1 =
 *   the bounded CI budget; e.g. 20 for a long local run).
 */
import type { Parameters } from 'fast-check';

/** The seed of this run: WARDEN_FUZZ_SEED, or a fresh one (printed on failure). */
export const FUZZ_SEED: number = process.env.WARDEN_FUZZ_SEED ? Number(process.env.WARDEN_FUZZ_SEED) : (Date.now() ^ (Math.random() * 0x7fffffff)) | 0;

/** The multiplier of case counts (WARDEN_FUZZ_SCALE, default 1). */
export const FUZZ_SCALE: number = Math.max(0.01, Number(process.env.WARDEN_FUZZ_SCALE ?? '1') || 1);

/** `n` cases scaled by WARDEN_FUZZ_SCALE (at least 1). */
export function runs(n: number): number {
  return Math.max(1, Math.round(n * FUZZ_SCALE));
}

/** fast-check parameters for `n` (scaled) runs with this run's seed; failures name the seed and path to replay. */
export function fcParams<T>(n: number, extra: Parameters<T> = {}): Parameters<T> {
  const path = process.env.WARDEN_FUZZ_PATH;
  return {
    seed: FUZZ_SEED,
    numRuns: runs(n),
    ...(path ? { path } : {}),
    // The report carries `seed` and `path`; say how to feed them back.
    reporter: (details) => {
      if (!details.failed) return;
      throw new Error(
        `Property failed after ${details.numRuns} runs (replay: WARDEN_FUZZ_SEED=${details.seed} WARDEN_FUZZ_PATH=${details.counterexamplePath ?? ''})\n` +
          `counterexample: ${abbreviate(JSON.stringify(details.counterexample))}\n` +
          `${details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance)}`,
      );
    },
    ...extra,
  };
}

function abbreviate(s: string): string {
  return s.length <= 4000 ? s : `${s.slice(0, 4000)}... (${s.length} characters)`;
}
