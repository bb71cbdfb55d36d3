export * from './codes.js';
export * from './reader.js';
export * from './writer.js';
export * from './errors.js';
export * from './frontend.js';
export * from './backend.js';
export * from './framer.js';
export * from './outbox.js';
