// Floating promises are banned everywhere; workflow code may not touch Node builtins or non-determinism.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import { builtinModules } from 'node:module';

const nodeBuiltins = [...builtinModules, ...builtinModules.map((m) => `node:${m}`)];

export default tseslint.config(
  { ignores: ['node_modules/', 'dist/', '.data/', '.tools/', 'db/migrations/', 'client/bin/', 'jest.config.js'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts', 'console/src/**/*.tsx'],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    files: [
      'workflows/**/*.ts',
      'lib/errors.ts',
      'lib/ids.ts',
      'lib/presets.ts',
      'lib/restoreOrder.ts',
      'lib/authz.ts',
      'lib/vocabulary.ts',
    ],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          paths: nodeBuiltins.map((name) => ({
            name,
            message: 'workflow code is deterministic: no Node builtins (do I/O in an activity)',
          })),
          patterns: [
            {
              group: ['**/activities/*', '**/catalog/*', '**/workers/*', '**/client/*', '**/scripts/*', '**/lib/config'],
              allowTypeImports: true,
              message: 'workflows import activity and client types only (`import type`)',
            },
            {
              group: [
                'dockerode',
                'postgres',
                'drizzle-orm',
                'drizzle-orm/*',
                '@octokit/*',
                '**/db/*',
                '@temporalio/activity',
                '@temporalio/worker',
                '@temporalio/client',
              ],
              message: 'workflow code does no I/O',
            },
          ],
        },
      ],
      'no-restricted-properties': [
        'error',
        {
          object: 'Date',
          property: 'now',
          message: 'use workflow time: Date.now() is deterministic only inside the sandbox; prefer workflowInfo() or sleep()',
        },
        { object: 'Math', property: 'random', message: 'use uuid4() from @temporalio/workflow' },
      ],
      'no-restricted-globals': [
        'error',
        { name: 'process', message: 'no process in workflow code' },
        { name: 'setTimeout', message: 'use sleep() from @temporalio/workflow' },
        { name: 'setInterval', message: 'use sleep() in a loop' },
      ],
      '@typescript-eslint/consistent-type-imports': ['error', { prefer: 'type-imports' }],
    },
  },
);
