// room.watch / room.unwatch with a server token: a room's system events live, every message
// whatever its targets, gapless; replay from afterSeq; re-watched after a hub restart from the
// last seq seen (writes made while away arrive once, in order); the watch ends at dismissRoom.
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

for (const encoding of ["json", "msgpack"]) {
  test(`watchRoom across a hub restart over ${encoding}`, { timeout: 60000 }, async () => {
    const room = `w-${encoding}`;
    const alice = `alice-w-${encoding}`;
    let gate = null;
    let calls = 0;
    const getToken = async () => { calls += 1; if (gate) await gate.promise; return token("console", { server: true }); };
    const watcher = await RoomClient.connect(hub.url, { key: KEY, getToken, encoding, WebSocket, backoff: [0.05, 0.5] });
    clients.push(watcher);
    await watcher.upsertUser({ id: alice });
    const a = await RoomClient.connect(hub.url, { key: KEY, token: token(alice), encoding, WebSocket });
    clients.push(a);
    await a.createRoom({ room, name: "n0" });
    await a.updateRoom({ room, name: "n1" });

    const seen = collect(watcher, (m) => m.room === room);
    // replay from history first: seq 2 onwards, then live
    const watched = await watcher.watchRoom({ room, afterSeq: 1 });
    assert.equal(watched.id, room);
    assert.equal(watched.seq, 2);
    assert.deepEqual(watcher.watchedRooms, [room]);
    await a.updateRoom({ room, name: "n2" });
    assert.deepEqual((await seen.until(2)).map((m) => [m.seq, m.changes.name]), [[2, "n1"], [3, "n2"]]);
    // watching again answers the Room and changes nothing
    assert.equal((await watcher.watchRoom({ room })).seq, 3);

    // the hub goes away; the watcher's reconnect waits (in getToken) until alice wrote
    const before = calls;
    gate = {};
    gate.promise = new Promise((resolve) => { gate.resolve = resolve; });
    await hub.kill();
    await waitState(watcher, "reconnecting");
    await hub.start();
    await waitState(a, "open");
    for (let i = 3; i <= 5; i++) await a.updateRoom({ room, name: `n${i}` });
    const opened = gate;
    gate = null;
    opened.resolve();
    await waitState(watcher, "open");
    assert.ok(calls > before, `getToken called again on the reconnect (${calls} calls)`);
    await a.updateRoom({ room, name: "n6" });
    const got = await seen.until(6);
    assert.deepEqual(got.map((m) => [m.seq, m.changes.name]), [[2, "n1"], [3, "n2"], [4, "n3"], [5, "n4"], [6, "n5"], [7, "n6"]]);
    assert.deepEqual(got, (await watcher.history({ room, afterSeq: 1 })).messages);
    assert.equal(watcher.lastSeqs[room], 7);

    // unwatch: {} and the room is no longer watched; the dismissRoom of a watched room ends it
    assert.deepEqual(await watcher.unwatchRoom({ room }), {});
    assert.deepEqual(watcher.watchedRooms, []);
    await watcher.watchRoom({ room, afterSeq: 7 });
    await a.dismissRoom({ room });
    const last = await seen.until(7);
    assert.equal(last[6].type, "dismissRoom");
    assert.equal(last[6].seq, 8);
    assert.deepEqual(watcher.watchedRooms, []);
  });
}
