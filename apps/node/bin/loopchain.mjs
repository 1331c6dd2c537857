#!/usr/bin/env node
// Runs the TypeScript CLI in this process through tsx's loader (the packages export their sources;
// no build step). One process, not a child: a signal sent to it (Ctrl-C, a supervisor's SIGTERM)
// reaches the CLI, which stops its node cleanly, and no node is left running without a parent.
import { register } from 'tsx/esm/api'

register()
await import(new URL('../src/main.ts', import.meta.url).href)
