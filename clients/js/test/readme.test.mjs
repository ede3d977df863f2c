// The README's "A client in 20 lines" runs as written (only the URL, key, tokens and import
// paths swapped in) against a real hub, and prints what the README says it prints.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";
import { KEY, startHub, startRedis, token } from "./helpers.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
let redis, hub, dir;
before(async () => {
  redis = await startRedis();
  hub = await startHub(redis.url);
  dir = mkdtempSync(path.join(os.tmpdir(), "roomhub-readme-"));
});
after(async () => {
  await hub?.stop();
  await redis?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test("the README example", { timeout: 30000 }, async () => {
  const readme = readFileSync(path.join(here, "..", "README.md"), "utf8");
  let code = readme.split("```js\n")[1].split("```")[0];
  const wsUrl = pathToFileURL(createRequire(import.meta.url).resolve("ws").replace(/index\.js$/, "wrapper.mjs")).href;
  const lib = pathToFileURL(path.join(here, "..", "dist", "index.js")).href;
  const call = 'main("SERVER_TOKEN", "ALICE_TOKEN", "BOB_TOKEN");';
  assert.ok(code.includes(call));
  code = code
    .replace('from "roomhub-client"', `from ${JSON.stringify(lib)}`)
    .replace('from "ws"', `from ${JSON.stringify(wsUrl)}`)
    .replace('"ws://127.0.0.1:8765/ws"', JSON.stringify(hub.url))
    .replace('key = "dev"', `key = ${JSON.stringify(KEY)}`)
    .replace(call, `await main(${[token("backend", { server: true }), token("alice"), token("bob")].map((t) => JSON.stringify(t)).join(", ")});`)
    .replace(/console\.log\(/g, "globalThis.__print(");
  const file = path.join(dir, "example.mjs");
  writeFileSync(file, code);
  globalThis.__printed = [];
  globalThis.__print = (...args) => globalThis.__printed.push(args);
  await import(pathToFileURL(file).href);
  assert.deepEqual(globalThis.__printed, [
    [1, "createRoom", ["alice"], {}],
    [2, "addMember", ["bob"], {}],
    [3, "updateMember", ["bob"], { nickname: "Bobby", score: 100 }],
  ]);
});
