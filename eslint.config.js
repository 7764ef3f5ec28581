import tseslint from 'typescript-eslint';
import importX from 'eslint-plugin-import-x';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**', '.flotilla/**', 'bin/**', 'deploy/**'] },
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    // Nest injects constructor parameters by their runtime class (decorator
    // metadata), so type-only imports of injected classes would break DI.
    languageOptions: { parserOptions: { emitDecoratorMetadata: true, experimentalDecorators: true } },
    plugins: { 'import-x': importX },
    settings: {
      'import-x/resolver-next': [importX.createNodeResolver({ extensions: ['.ts', '.js'] })],
    },
    rules: {
      'import-x/no-cycle': ['error', { ignoreExternal: true }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports', disallowTypeAnnotations: false }],
    },
  },
  {
    files: ['libs/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: [{ group: ['**/apps/**'], message: 'libs never import apps' }] }] },
  },
  {
    files: ['apps/hub/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: [{ group: ['**/agent/**'], message: 'the hub never imports agent code: share through libs/' }] }] },
  },
  {
    files: ['apps/agent/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: [{ group: ['**/hub/**'], message: 'the agent never imports hub code: share through libs/' }] }] },
  },
  {
    files: ['test/**/*.ts', '**/*.spec.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
  {
    files: ['libs/contracts/**/*.ts', 'libs/policy/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [{ group: ['**/apps/**'], message: 'libs never import apps' }, { group: ['@nestjs/*', 'typeorm', 'pg', 'mqtt', 'aedes', 'node:fs', 'node:net', 'node:http', 'fs', 'net', 'http'], message: 'contracts and policy are pure: no framework or I/O imports' }],
      }],
    },
  },
);
