// Builds the playground (web/) into dist/web/: index.html at the top, its assets under
// playground/, the layout the gateway serves (src/server/playground.ts). Run by `npm run build`.
import { copyFile, mkdir, rm } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = fileURLToPath(new URL("..", import.meta.url));
const out = `${root}dist/web`;

await rm(out, { recursive: true, force: true });
await mkdir(`${out}/playground`, { recursive: true });
await build({
  absWorkingDir: root,
  entryPoints: [
    { in: "web/main.ts", out: "playground/app" },
    { in: "web/style.css", out: "playground/app" },
  ],
  outdir: out,
  bundle: true,
  format: "esm",
  target: ["chrome111", "firefox115", "safari16.4"],
  minify: true,
  legalComments: "none",
  tsconfig: "web/tsconfig.json",
  logLevel: "warning",
});
await copyFile(`${root}web/index.html`, `${out}/index.html`);
await copyFile(`${root}web/favicon.svg`, `${out}/playground/favicon.svg`);
