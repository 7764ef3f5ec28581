export * from './selector.js';
export * from './schemas.js';
export * from './documents.js';
export * from './references.js';
export * from './json-schema.js';
export * from './placement.js';
export * from './render.js';
export * from './identities.js';
