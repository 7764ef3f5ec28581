#!/usr/bin/env node
// Entry of the `flotilla` command: the compiled CLI lives in dist/ (built by `npm ci`).
import '../dist/apps/cli/src/main.js';
