/**
 * The native socket I/O module's former path, kept because scripts outside this repository
 * (the product side's cross-talk repros in ../shared/repro/) import `dist/proxy/native-io.js`.
 * The module itself is transport/native-io.ts.
 */
export * from './transport/native-io.js';
