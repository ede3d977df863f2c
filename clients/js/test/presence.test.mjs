// Presence (docs/protocol.md §5.21) through the client, on two real hubs sharing one Redis:
// `presence: true` brings members' online/offline events, presence() and getRoom({presence})
// read the state, a client without the option gets no events, and the option is sent again on
// the connection after a reconnect.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { RoomClient } from "../dist/index.js";
import { KEY, WebSocket, startHub, startRedis, token, within } from "./helpers.mjs";

let redis, hubA, hubB;
const clients = [];
before(async () => {
  redis = await startRedis();
  hubA = await startHub(redis.url);
  hubB = await startHub(redis.url);
});
after(async () => {
  for (const c of clients) c.close();
  await hubA?.stop();
  await hubB?.stop();
  await redis?.stop();
});

async function connect(hub, user, options = {}) {
  const client = await RoomClient.connect(hub.url, { key: KEY, token: token(user), WebSocket, backoff: [0.05, 0.5], ...options });
  clients.push(client);
  return client;
}

/** Presence events as they arrive; `next(pred)` waits (bounded) for the first one `pred` takes. */
function presenceEvents(client) {
  const got = [];
  let wake = null;
  client.on("presence", (e) => { got.push(e); wake?.(); });
  got.next = (pred, ms = 10000) => within(ms, (async () => {
    for (;;) {
      const i = got.findIndex(pred);
      if (i >= 0) return got.splice(i, 1)[0];
      await new Promise((r) => { wake = r; });
    }
  })(), "a presence event");
  return got;
}

/** Polls `read` until `pred` accepts its value (presence is written behind the sockets). */
async function eventually(read, pred, ms = 10000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await read();
    if (pred(value) || Date.now() > deadline) return value;
    await new Promise((r) => setTimeout(r, 50));
  }
}

test("presence events, presence() and getRoom({presence}) across two hubs", { timeout: 60000 }, async () => {
  const backend = await RoomClient.connect(hubA.url, { key: KEY, token: token("backend", { server: true }), WebSocket });
  clients.push(backend);
  for (const id of ["alice", "bob", "carol", "dave"]) await backend.upsertUser({ id });
  await backend.createRoom({ room: "p", owner: "alice", members: ["bob", "carol", "dave"] });

  const bob = await connect(hubB, "bob", { presence: true });
  const seen = presenceEvents(bob);
  const dave = await connect(hubB, "dave");
  const daveSaw = [];
  dave.on("presence", (e) => daveSaw.push(e));

  const alice = await connect(hubA, "alice");
  const came = await seen.next((e) => e.user === "alice");
  assert.deepEqual({ ...came, time_ms: 0 }, { room: "p", user: "alice", online: true, time_ms: 0 });
  assert.ok(Math.abs(came.time_ms - Date.now()) < 60000);

  const now = await eventually(() => bob.presence({ room: "p" }), (p) => p.count === 3);
  assert.deepEqual(now, { online: ["alice", "bob", "dave"], count: 3 });
  const room = await bob.getRoom({ room: "p", presence: true });
  assert.deepEqual(Object.fromEntries(room.members.map((m) => [m.id, m.online])), { alice: true, bob: true, carol: false, dave: true });
  const plain = await bob.getRoom({ room: "p" });
  assert.ok(plain.members.every((m) => m.online === undefined));

  // bob's hub dies: he reconnects (to it, restarted) and still gets events: presence was asked again
  const dropped = within(20000, new Promise((resolve) => {
    const off = bob.on("disconnect", () => { off(); resolve(); });
  }), "bob's drop");
  await hubB.restart();
  await dropped;
  await within(20000, new Promise((resolve) => {
    if (bob.state === "open") resolve();
    const off = bob.on("state", (s) => { if (s === "open") { off(); resolve(); } });
  }), "bob reconnected");
  const carol = await connect(hubA, "carol");
  assert.equal((await seen.next((e) => e.user === "carol")).online, true);

  alice.close();
  const gone = await seen.next((e) => e.user === "alice" && !e.online);
  assert.equal(gone.room, "p");
  carol.close();
  await seen.next((e) => e.user === "carol" && !e.online);
  assert.deepEqual(daveSaw, []); // dave did not ask for presence events
  assert.ok(seen.every((e) => e.user !== "bob")); // nobody hears of themselves
});
