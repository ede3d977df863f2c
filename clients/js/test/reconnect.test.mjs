// Reconnect across a hub restart (the process killed, started again on the same port and
// Redis): writes made while the client was away arrive after the reconnect exactly once and in
// order, getToken is called again, a mutating call in flight at the kill is applied once.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { RoomClient } from "../dist/index.js";
import { KEY, WebSocket, collect, startHub, startRedis, token, within } from "./helpers.mjs";

let redis, hub;
const clients = [];
before(async () => {
  redis = await startRedis();
  hub = await startHub(redis.url);
});
after(async () => {
  for (const c of clients) c.close();
  await hub?.stop();
  await redis?.stop();
});

function waitState(client, state, ms = 20000) {
  if (client.state === state) return Promise.resolve();
  return within(ms, new Promise((resolve) => {
    const off = client.on("state", (s) => { if (s === state) { off(); resolve(); } });
  }), `state ${state}`);
}

/** A getToken that counts its calls and, while `hold` is set, waits for `release()`. */
function tokenSource(user) {
  const source = { calls: 0, gate: null };
  source.hold = () => { let release; source.gate = new Promise((r) => { release = r; }); source.release = () => { source.gate = null; release(); }; };
  source.getToken = async () => {
    source.calls += 1;
    if (source.gate) await source.gate;
    return token(user);
  };
  return source;
}

for (const encoding of ["json", "msgpack"]) {
  test(`reconnect across a hub restart over ${encoding}: no gap, no duplicate`, { timeout: 60000 }, async () => {
    const room = `rc-${encoding}`;
    const alice = `alice-rc-${encoding}`;
    const bob = `bob-rc-${encoding}`;
    const backend = await RoomClient.connect(hub.url, { key: KEY, token: token("backend", { server: true }), encoding, WebSocket });
    clients.push(backend);
    await backend.upsertUser({ id: alice });
    await backend.upsertUser({ id: bob });
    const tokens = tokenSource(alice);
    const a = await RoomClient.connect(hub.url, { key: KEY, getToken: tokens.getToken, encoding, WebSocket, backoff: [0.05, 0.5] });
    clients.push(a);
    assert.equal(tokens.calls, 1);
    const states = [];
    a.on("state", (s) => states.push(s));
    const resyncs = [];
    a.on("resync", (r) => resyncs.push(r));
    const seen = collect(a, (m) => m.room === room);
    const iterated = [];
    const iterator = a.messages();
    const iterating = (async () => { for await (const m of iterator) if (m.room === room) iterated.push(m); })();

    await a.createRoom({ room, name: "before", members: [bob] });
    await a.updateRoom({ room, name: "live 2" });
    await seen.until(2);

    // The hub goes away; alice's reconnect waits in getToken until the writes below are made.
    const callsBefore = tokens.calls;
    tokens.hold();
    await hub.kill();
    await waitState(a, "reconnecting");
    await assert.rejects(a.getRoom({ room }), { name: "ConnectionLost" });
    await hub.start();
    const b = await RoomClient.connect(hub.url, { key: KEY, token: token(bob), encoding, WebSocket, reconnect: false });
    clients.push(b);
    for (let i = 1; i <= 5; i++) await b.updateMember({ room, user: bob, properties: { nickname: `away ${i}` } });
    b.close();
    tokens.release();
    await waitState(a, "open");
    assert.ok(tokens.calls > callsBefore, `getToken called again (${tokens.calls})`);

    await a.updateRoom({ room, name: "after" });
    const got = await seen.until(8);
    assert.deepEqual(got.map((m) => m.seq), [1, 2, 3, 4, 5, 6, 7, 8]);
    assert.deepEqual(got.slice(1).map((m) => m.changes.name ?? m.changes.nickname), ["live 2", "away 1", "away 2", "away 3", "away 4", "away 5", "after"]);
    const hist = (await a.history({ room, afterSeq: 0 })).messages;
    assert.deepEqual(got, hist);
    assert.deepEqual(resyncs, []);
    assert.deepEqual(states, ["reconnecting", "open"]);
    assert.equal(a.lastSeqs[room], 8);

    // A mutating call in flight when the hub dies: retried with the same idempotency key after
    // the reconnect, applied exactly once (whether or not the first send reached the hub).
    const inflight = a.updateRoom({ room, name: "in flight" });
    await hub.kill();
    await hub.start();
    const result = await within(20000, inflight, "the retried call's reply");
    assert.equal(result.name, "in flight");
    await waitState(a, "open"); // (the reply may have come before the kill: then a is still reconnecting)
    await a.updateRoom({ room, name: "last" });
    const all = await seen.until(10);
    assert.deepEqual(all.slice(8).map((m) => [m.seq, m.changes.name]), [[9, "in flight"], [10, "last"]]);
    const histAll = (await a.history({ room, afterSeq: 0 })).messages;
    assert.deepEqual(histAll.map((m) => m.seq), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    assert.equal(histAll.filter((m) => m.changes.name === "in flight").length, 1);
    assert.ok(tokens.calls >= 3);

    a.close();
    await within(5000, iterating, "the end of messages() after close()");
    assert.deepEqual(iterated.map((m) => m.seq), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    assert.equal(a.state, "closed");
  });
}

test("a fixed token refused on reconnect: closed, not retried forever", { timeout: 30000 }, async () => {
  // (a token that expires while the hub is down: the reconnect's auth gets 100010)
  const t = token("carol-exp", { ttl: 3 });
  const c = await RoomClient.connect(hub.url, { key: KEY, token: t, WebSocket, backoff: [0.05, 0.2] });
  clients.push(c);
  await hub.kill();
  await new Promise((r) => setTimeout(r, 3500)); // (the token's lifetime: not a timing assertion)
  await hub.start();
  await waitState(c, "closed");
  await assert.rejects(c.waitOpen(), { name: "ConnectionLost" });
});

test("resume beyond what the hub replays: resync event, then the room re-read (snapshot)", { timeout: 60000 }, async () => {
  const small = await startHub(redis.url, undefined, ["--resume-max-messages", "2"]);
  try {
    const room = "rs-room";
    let backend = await RoomClient.connect(small.url, { key: KEY, token: token("backend", { server: true }), WebSocket, reconnect: false });
    await backend.upsertUser({ id: "alice-rs" });
    await backend.upsertUser({ id: "bob-rs" });
    let gate = null;
    const a = await RoomClient.connect(small.url, {
      key: KEY, WebSocket, backoff: [0.05, 0.5],
      getToken: async () => { if (gate) await gate.promise; return token("alice-rs"); },
    });
    const seen = collect(a, (m) => m.room === room);
    const resyncs = [];
    a.on("resync", (r) => resyncs.push(r));
    const snapshot = new Promise((resolve) => a.on("snapshot", resolve));
    await a.createRoom({ room, members: ["bob-rs"] });
    await seen.until(1);
    gate = {};
    gate.promise = new Promise((resolve) => { gate.resolve = resolve; });
    await small.kill();
    await waitState(a, "reconnecting");
    await small.start();
    backend = await RoomClient.connect(small.url, { key: KEY, token: token("backend", { server: true }), WebSocket, reconnect: false });
    for (let i = 1; i <= 5; i++) await backend.updateRoom({ room, name: `x${i}` });
    const opened = gate;
    gate = null;
    opened.resolve();
    await waitState(a, "open");
    const { room: reread } = await within(10000, snapshot, "the snapshot after the resync");
    assert.deepEqual(resyncs, [{ room, seq: 6 }]);
    assert.equal(reread.id, room);
    assert.equal(reread.name, "x5");
    assert.equal(reread.seq, 6);
    await backend.updateRoom({ room, name: "x6" });
    const got = await seen.until(2);
    assert.deepEqual(got.map((m) => m.seq), [1, 7]); // (2..6 are in the snapshot, not replayed)
    a.close();
    backend.close();
  } finally {
    await small.stop();
  }
});
