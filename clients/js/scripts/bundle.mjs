// The browser ESM bundle (includes @msgpack/msgpack), committed at server/console/roomhub-client.js.
import { build } from "esbuild";
import { fileURLToPath } from "node:url";

const here = (p) => fileURLToPath(new URL(p, import.meta.url));
// `--outfile PATH`: build elsewhere (the bundle check of tests/integration/test_js_client.py).
const at = process.argv.indexOf("--outfile");
const outfile = at > 0 ? process.argv[at + 1] : here("../../../server/console/roomhub-client.js");
await build({
  entryPoints: [here("../src/index.ts")],
  outfile,
  absWorkingDir: here(".."),
  bundle: true,
  format: "esm",
  platform: "browser",
  target: "es2020",
  legalComments: "inline",
  banner: { js: "// roomhub-client: built from clients/js by `npm run build` (esbuild); do not edit." },
  logLevel: "warning",
});
