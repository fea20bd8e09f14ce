#!/usr/bin/env -S node --min-semi-space-size=16
// The `passthrough` command: runs the compiled CLI (built by `npm run build`, which `npm ci` runs).
// The young generation starts at V8's default maximum (16 MB per semi-space) instead of growing
// to it: a gateway allocates fast, and a small nursery collected often promotes what a large one
// lets die (see test/bench/README.md). Node takes this flag on its command line only, so this
// line gives it, and `npm start` the same (for an `env` without -S); `node bin/passthrough.js` runs without it.
import { main } from "../dist/cli/main.js";

process.exitCode = await main(process.argv.slice(2));
