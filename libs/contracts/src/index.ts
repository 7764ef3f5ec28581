export * from './messages.js';
export * from './topics.js';
export * from './canonical-json.js';
export * from './envelope.js';
export * from './limits.js';
export * from './decode.js';
export * from './enrollment.js';
export { formatIssues } from './issues.js';
export * from './api.js';
