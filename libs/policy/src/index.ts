export * from './selector.js';
