/** @type {import('jest').Config} */
module.exports = {
  preset: 'ts-jest',
  testEnvironment: 'node',
  testMatch: ['<rootDir>/test/**/*.test.ts'],
  globalSetup: '<rootDir>/test/globalSetup.ts',
  globalTeardown: '<rootDir>/test/globalTeardown.ts',
  testTimeout: 120000,
  testSequencer: '<rootDir>/test/support/sequencer.mjs',
  // Type errors are caught by `npm run typecheck`; isolated transpiling keeps jest fast on 2 cores.
  transform: { '^.+\\.ts$': ['ts-jest', { isolatedModules: true }] },
};
