#!/usr/bin/env node
/**
 * Cost of masking one cell, per sensitive type and masker, in the text format
 * (the common case) — a micro-benchmark of the pure masking core
 * (dist/masking/cell.js), on this machine, in the same run as nothing else.
 * The end-to-end throughput of a masked SELECT is in bench/run.js
 * (case select_rows, target warden_mask vs warden).
 */
import { performance } from 'node:perf_hooks';
import { maskCell, maskCellSpans, TYPE_OIDS } from '../dist/masking/cell.js';

const key = Buffer.alloc(32, 7);
const text = TYPE_OIDS.text ?? 25;
const cases = [
  ['email', 'fake', 'ann.real@corp-real.com'],
  ['name', 'fake', 'Annabel Realname'],
  ['phone', 'fake', '+1 415 555 0100'],
  ['ssn', 'partial', '123-45-6789'],
  ['credit_card', 'partial', '4111 1111 1111 1111'],
  ['credit_card', 'fake', '4111 1111 1111 1111'],
  ['email', 'hash', 'ann.real@corp-real.com'],
  ['email', 'redact', 'ann.real@corp-real.com'],
];
const N = Number(process.env.BENCH_MASK_CELLS ?? 20_000);
console.log(`masking: ${N} distinct values per row below (text format), µs per cell`);
for (const [type, masker, sample] of cases) {
  const values = Array.from({ length: N }, (_, i) => Buffer.from(i === 0 ? sample : `${sample.slice(0, -3)}${String(i % 1000).padStart(3, '0')}`));
  for (let i = 0; i < 1000; i++) maskCell(values[i % N], text, 0, type, masker, key); // warm up
  const t0 = performance.now();
  for (const v of values) maskCell(v, text, 0, type, masker, key);
  const us = ((performance.now() - t0) * 1000) / N;
  console.log(`masking: ${type.padEnd(12)} ${masker.padEnd(8)} ${us.toFixed(2).padStart(7)} µs/cell`);
}
const free = Array.from({ length: N }, (_, i) => Buffer.from(`order ${i} shipped on 2026-11-${String((i % 28) + 1).padStart(2, '0')} — no PII here`));
const withPii = Array.from({ length: N }, (_, i) => Buffer.from(`call me at +1 415 555 ${String(i % 10000).padStart(4, '0')} or mail x${i}@corp.com`));
for (const [name, values] of [['detect, nothing found', free], ['detect, 2 values found', withPii]]) {
  const t0 = performance.now();
  for (const v of values) maskCellSpans(v, text, 0, ['email', 'phone', 'credit_card', 'ssn'], key, () => 'fake');
  const us = ((performance.now() - t0) * 1000) / N;
  console.log(`masking: ${name.padEnd(21)} ${us.toFixed(2).padStart(7)} µs/cell`);
}
