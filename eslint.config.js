import tseslint from 'typescript-eslint';
import importX from 'eslint-plugin-import-x';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**', '.flotilla/**', 'bin/**', 'deploy/**'] },
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    plugins: { 'import-x': importX },
    settings: {
      'import-x/resolver-next': [importX.createNodeResolver({ extensions: ['.ts', '.js'] })],
    },
    rules: {
      'import-x/no-cycle': ['error', { ignoreExternal: true }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports', disallowTypeAnnotations: false }],
      'no-restricted-imports': ['error', { patterns: [{ group: ['**/apps/*', '../../apps/**'], message: 'libs never import apps' }] }],
    },
  },
  {
    files: ['libs/contracts/**/*.ts', 'libs/policy/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [{ group: ['@nestjs/*', 'typeorm', 'pg', 'mqtt', 'aedes', 'node:fs', 'node:net', 'node:http', 'fs', 'net', 'http'], message: 'contracts and policy are pure: no framework or I/O imports' }],
      }],
    },
  },
);
