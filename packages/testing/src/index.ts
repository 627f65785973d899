// @gatehouse/testing: private helpers shared by every test suite in the workspace.
// Each module has one job; see its header comment.

export * from './api.js';
export * from './bff.js';
export * from './browser.js';
export * from './idp.js';
export * from './ports.js';
export * from './redis.js';
