// Test fixtures: a real redis-server and a real hub (python -m roomhub.server serve), on free
// loopback ports, every wait bounded; tokens minted here as HS256 JWTs with node:crypto.
import { spawn } from "node:child_process";
import { createHmac, randomBytes } from "node:crypto";
import { once } from "node:events";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import WebSocket from "ws";

const here = path.dirname(fileURLToPath(import.meta.url));
export const PYTHON = process.env.ROOMHUB_PYTHON ?? path.resolve(here, "../../../.venv/bin/python");
export const REDIS = process.env.ROOMHUB_REDIS_SERVER ?? "/usr/bin/redis-server";
export const KEY = "testapp";
export const SECRET = randomBytes(24).toString("hex"); // 48 chars, never printed
export { WebSocket };

export async function freePort() {
  const server = net.createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address();
  await new Promise((r) => server.close(r));
  return port;
}

const b64url = (data) => Buffer.from(data).toString("base64url");

export function token(user, { server = false, ttl = 3600 } = {}) {
  const header = b64url(JSON.stringify({ alg: "HS256", typ: "JWT" }));
  const claims = { sub: user, exp: Math.floor(Date.now() / 1000) + ttl };
  if (server) claims.scope = "server";
  const body = b64url(JSON.stringify(claims));
  const sig = createHmac("sha256", SECRET).update(`${header}.${body}`).digest("base64url");
  return `${header}.${body}.${sig}`;
}

async function waitPort(port, child, what, timeoutMs = 15000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${what} exited with ${child.exitCode}: ${child.output()}`);
    const ok = await new Promise((resolve) => {
      const socket = net.connect(port, "127.0.0.1");
      socket.once("connect", () => { socket.destroy(); resolve(true); });
      socket.once("error", () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${what} not listening on ${port} within ${timeoutMs} ms: ${child.output()}`);
}

function track(child) {
  let out = "";
  const keep = (d) => { out = (out + d.toString()).slice(-8000); };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  child.output = () => out;
  return child;
}

async function stop(child, timeoutMs = 10000) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, "exit");
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  await exited;
  clearTimeout(timer);
}

export async function startRedis() {
  const port = await freePort();
  const child = track(spawn(REDIS, ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], { stdio: ["ignore", "pipe", "pipe"] }));
  await waitPort(port, child, "redis-server");
  return { port, url: `redis://127.0.0.1:${port}/0`, stop: () => stop(child) };
}

/** A hub on `port` (a free one if not given); `restart()` kills it and starts it again on the
 * same port and Redis. */
export async function startHub(redisUrl, port, extra = []) {
  port ??= await freePort();
  const hub = { port, url: `ws://127.0.0.1:${port}/ws`, child: null };
  hub.start = async () => {
    hub.child = track(spawn(PYTHON, [
      "-m", "roomhub.server", "serve", "--host", "127.0.0.1", "--port", String(port), "--http-port", "0",
      "--redis", redisUrl, "--app", `${KEY}=${SECRET}`, "--rate-limit", "0", "--conn-rate-limit", "0",
      "--user-rate-limit", "0", "--rooms-per-hour", "0", "--log-level", "WARNING", ...extra,
    ], { stdio: ["ignore", "pipe", "pipe"] }));
    await waitPort(port, hub.child, "hub");
  };
  hub.kill = async () => {
    const child = hub.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, "exit");
    child.kill("SIGKILL");
    await exited;
  };
  hub.restart = async () => { await hub.kill(); await hub.start(); };
  hub.stop = () => stop(hub.child);
  await hub.start();
  return hub;
}

/** Resolves with the first value `next()` gives that `pred` accepts; bounded. */
export function within(ms, promise, what = "a result") {
  let timer;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`no ${what} within ${ms} ms`)), ms); }),
  ]);
}

/** Collects a client's system messages; `until(n)` waits (bounded) until n have arrived. */
export function collect(client, filter = () => true) {
  const got = [];
  let wake = null;
  client.on("system", (m) => { if (filter(m)) { got.push(m); wake?.(); } });
  got.until = (n, ms = 10000) => within(ms, (async () => {
    while (got.length < n) await new Promise((r) => { wake = r; });
    return got.slice(0, n);
  })(), `${n} system messages (got ${got.length})`);
  return got;
}
