import { defineConfig } from "vitest/config";

// The end-to-end suites run twice: with the unary fast paths on (the default) and with every
// RPC served by connect-node, so that both ways in are held to the same behaviour.
const common = { testTimeout: 20_000, hookTimeout: 20_000, pool: "forks" as const };

export default defineConfig({
  test: {
    projects: [
      { test: { ...common, name: "default", include: ["test/**/*.test.ts"] } },
      { test: { ...common, name: "fast paths off", include: ["test/e2e/**/*.test.ts"], exclude: ["test/e2e/cli.test.ts", "test/e2e/fast-path-equivalence.test.ts", "test/e2e/message-depth.test.ts"], env: { PASSTHROUGH_TEST_FAST_PATHS: "off" } } },
    ],
  },
});
