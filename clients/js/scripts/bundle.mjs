// The browser ESM bundle (includes @msgpack/msgpack), committed at server/console/roomhub-client.js.
import { build } from "esbuild";
import { fileURLToPath } from "node:url";

const here = (p) => fileURLToPath(new URL(p, import.meta.url));
await build({
  entryPoints: [here("../src/index.ts")],
  outfile: here("../../../server/console/roomhub-client.js"),
  bundle: true,
  format: "esm",
  platform: "browser",
  target: "es2020",
  legalComments: "inline",
  banner: { js: "// roomhub-client: built from clients/js by `npm run build` (esbuild); do not edit." },
  logLevel: "warning",
});
