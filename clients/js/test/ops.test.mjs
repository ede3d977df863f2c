// The whole op set through the typed methods, against a real hub and Redis, in both encodings:
// each method once with its effect checked, error paths (RoomError code/reason/field), system
// events in seq order, and the async iterator.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { RoomClient, RoomError, OPS } from "../dist/index.js";
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

async function connect(user, encoding, extra = {}) {
  const c = await RoomClient.connect(hub.url, { key: KEY, token: token(user, extra), encoding, WebSocket });
  clients.push(c);
  return c;
}

async function rejects(promise, code, reason, field) {
  const error = await promise.then(() => null, (e) => e);
  assert.ok(error instanceof RoomError, `expected a RoomError ${code}, got ${error}`);
  assert.equal(error.code, code);
  assert.equal(error.reason, reason);
  assert.equal(typeof error.message, "string");
  assert.equal(error.field, field);
  return error;
}

for (const encoding of ["json", "msgpack"]) {
  describe(`every op over ${encoding}`, { timeout: 60000 }, () => {
    const room = `ops-${encoding}`;
    const u = (name) => `${name}-${encoding}`;
    const [alice, bob, carol, dave] = ["alice", "bob", "carol", "dave"].map(u);
    let backend, a, b, c, seenByAlice, seenByCarol;

    test("connect and upsertUser (server token)", async () => {
      backend = await connect("backend", encoding, { server: true });
      assert.equal(backend.encoding, encoding);
      assert.equal(backend.state, "open");
      for (const id of [alice, bob, carol, dave]) {
        const user = await backend.upsertUser({ id, nickname: id.toUpperCase() });
        assert.deepEqual(user, { id, nickname: id.toUpperCase(), avatar: "" });
      }
      a = await connect(alice, encoding);
      b = await connect(bob, encoding);
      c = await connect(carol, encoding);
      assert.equal(a.user, alice);
      seenByAlice = collect(a, (m) => m.room === room);
      seenByCarol = collect(c, (m) => m.room === room);
    });

    test("user tokens may not use server ops: 100006 FORBIDDEN", async () => {
      await rejects(a.upsertUser({ id: alice, nickname: "x" }), 100006, "FORBIDDEN", undefined);
      await rejects(a.appRooms({}), 100006, "FORBIDDEN", undefined);
      await rejects(a.watchRoom({ room }), 100006, "FORBIDDEN", undefined);
      await rejects(a.unwatchRoom({ room }), 100006, "FORBIDDEN", undefined);
    });

    test("createRoom, getRoom, listRooms", async () => {
      const created = await a.createRoom({ room, name: "Demo", members: [bob], custom: { topic: "t1" } });
      assert.equal(created.id, room);
      assert.equal(created.owner, alice);
      assert.deepEqual(created.custom, { topic: "t1" });
      assert.deepEqual(created.members.map((m) => [m.id, m.role]), [[alice, "owner"], [bob, "member"]]);
      const got = await b.getRoom({ room });
      assert.equal(got.name, "Demo");
      assert.equal(got.seq, 1);
      const listed = await a.listRooms();
      assert.deepEqual(listed.rooms.map((r) => r.id), [room]);
      await rejects(a.createRoom({ room, name: "again" }), 100003, "ROOM_EXISTS", undefined);
    });

    test("addMembers (invitation, reply ack), declineInvitation, acceptInvitation as operator", async () => {
      const invited = await a.addMembers({ room, invitees: [carol], invitationRequired: true, systemMessage: true });
      assert.deepEqual(invited.invitations.map((i) => [i.user, i.inviter]), [[carol, alice]]);
      const [inviteMsg] = await seenByCarol.until(1);
      assert.equal(inviteMsg.type, "inviteMember");
      assert.equal(inviteMsg.notify, true);
      assert.deepEqual(await c.declineInvitation({ room }), {});
      assert.deepEqual((await a.getRoom({ room })).invitations, []);
      const ack = await a.addMembers({ room, invitees: [carol], invitationRequired: true, reply: "ack" });
      assert.equal(ack.room, room);
      assert.equal(typeof ack.seq, "number");
      assert.deepEqual(Object.keys(ack).sort(), ["room", "seq"]);
      const accepted = await backend.acceptInvitation({ room, operator: carol });
      assert.ok(accepted.members.some((m) => m.id === carol && m.role === "member"));
      assert.deepEqual(accepted.invitations, []);
    });

    test("updateMember (camelCase args to snake_case), listMembers, history", async () => {
      const updated = await b.updateMember({
        room, user: bob, properties: { nickname: "Bobby", mood: "ok" }, systemMessage: true, notificationExtension: "ext-1",
      });
      const me = updated.members.find((m) => m.id === bob);
      assert.equal(me.nickname, "Bobby");
      assert.deepEqual(me.props, { mood: "ok" });
      await a.updateMember({ room, user: bob, properties: { role: "admin" } });
      const page1 = await a.listMembers({ room, limit: 2 });
      assert.deepEqual(page1.members.map((m) => m.id), [alice, bob]);
      assert.equal(page1.next, bob);
      const page2 = await a.listMembers({ room, after: page1.next, limit: 2 });
      assert.deepEqual(page2.members.map((m) => m.id), [carol]);
      assert.equal(page2.next, null);
      const hist = await a.history({ room, afterSeq: 4, limit: 2 });
      assert.deepEqual(hist.messages.map((m) => m.seq), [5, 6]);
      assert.equal(hist.more, true);
      const updateMsg = (await a.history({ room, afterSeq: 0 })).messages.find((m) => m.type === "updateMember");
      assert.equal(updateMsg.extension, "ext-1");
      assert.deepEqual(updateMsg.changes, { nickname: "Bobby", mood: "ok" });
    });

    test("updateRoom, cancelInvitations, leaveRoom, removeMember, transferRoom", async () => {
      const renamed = await b.updateRoom({ room, name: "Demo 2", custom: { topic: "t2" } });
      assert.equal(renamed.name, "Demo 2");
      assert.deepEqual(renamed.custom, { topic: "t2" });
      await a.addMembers({ room, invitees: [dave], invitationRequired: true });
      const cancelled = await a.cancelInvitations({ room, invitees: [dave] });
      assert.deepEqual(cancelled.invitations, []);
      assert.deepEqual(await c.leaveRoom({ room }), {});
      await rejects(c.getRoom({ room }), 100005, "NOT_A_MEMBER", undefined);
      await a.addMembers({ room, invitees: [dave] });
      const removed = await a.removeMember({ room, user: dave });
      assert.ok(!removed.members.some((m) => m.id === dave));
      const transferred = await a.transferRoom({ room, to: bob });
      assert.equal(transferred.owner, bob);
      assert.equal(transferred.members.find((m) => m.id === alice).role, "admin");
    });

    test("error paths: RoomError code, reason, field", async () => {
      await rejects(a.getRoom({ room: "no-such-room" }), 100004, "ROOM_NOT_FOUND", undefined);
      await rejects(a.listMembers({ room, limit: 0 }), 100002, "INVALID_PARAMETER", "limit");
      await rejects(a.addMembers({ room, invitees: ["nobody-" + encoding] }), 100007, "USER_NOT_FOUND", undefined);
      await rejects(a.updateMember({ room, user: bob, properties: { role: "owner" } }), 100006, "FORBIDDEN", undefined);
      await rejects(a.history({ room, afterSeq: -1 }), 100002, "INVALID_PARAMETER", "after_seq");
      await rejects(a.call("room.get", { room, bogus: 1 }), 100002, "INVALID_PARAMETER", "bogus");
      await rejects(a.listRooms({ operator: "x" }), 100002, "INVALID_PARAMETER", "operator");
      await rejects(backend.listRooms(), 100002, "INVALID_PARAMETER", "operator");
    });

    test("an explicit idempotency key: a repeat is applied once", async () => {
      const first = await b.updateRoom({ room, name: "Once", idempotencyKey: `k-${encoding}`, reply: "ack" });
      const again = await b.updateRoom({ room, name: "Once", idempotencyKey: `k-${encoding}`, reply: "ack" });
      assert.deepEqual(again, first);
      const msgs = (await a.history({ room, afterSeq: 0 })).messages.filter((m) => m.type === "updateRoom" && m.changes.name === "Once");
      assert.equal(msgs.length, 1);
    });

    test("dismissRoom, then system events in seq order, each once, as history has them", async () => {
      const iterator = a.messages();
      const before = (await backend.history({ room, afterSeq: 0 })).messages;
      assert.deepEqual(await b.dismissRoom({ room }), {});
      await rejects(a.getRoom({ room }), 100004, "ROOM_NOT_FOUND", undefined);
      const seenAll = await seenByAlice.until(before.length + 1);
      assert.equal(seenAll.at(-1).type, "dismissRoom");
      assert.equal(seenAll.at(-1).seq, before.length + 1);
      const hist = [...before, seenAll.at(-1)];
      const seen = await seenByAlice.until(hist.length);
      assert.deepEqual(seen, hist);
      assert.deepEqual(seen.map((m) => m.seq), hist.map((_, i) => i + 1));
      assert.deepEqual(seen.map((m) => m.type), [
        "createRoom", "inviteMember", "declineInvitation", "inviteMember", "acceptInvitation", "updateMember",
        "assignAdmin", "updateRoom", "inviteMember", "cancelInvitation", "leaveRoom", "addMember", "removeMember",
        "transferOwner", "updateRoom", "dismissRoom",
      ]);
      const next = await within(10000, iterator.next(), "the dismissRoom from messages()");
      assert.equal(next.value.type, "dismissRoom");
      await iterator.return();
    });

    test("appRooms (server token)", async (t) => {
      if (!("app.rooms" in OPS)) return t.skip("app.rooms not in the op table");
      for (const id of ["p-1", "p-2", "p-3"]) await backend.createRoom({ room: `${encoding}-${id}`, owner: alice });
      const page = await backend.appRooms({ prefix: `${encoding}-p-`, limit: 2 });
      assert.deepEqual(page.rooms.map((r) => r.id), [`${encoding}-p-1`, `${encoding}-p-2`]);
      assert.equal(page.next, `${encoding}-p-2`);
      const rest = await backend.appRooms({ prefix: `${encoding}-p-`, after: page.next, limit: 2 });
      assert.deepEqual(rest.rooms.map((r) => r.id), [`${encoding}-p-3`]);
      assert.equal(rest.next, null);
    });

    test("close(): state closed, later calls fail with ConnectionLost", async () => {
      const states = [];
      b.on("state", (s) => states.push(s));
      b.close();
      assert.equal(b.state, "closed");
      assert.deepEqual(states, ["closed"]);
      await assert.rejects(b.getRoom({ room }), { name: "ConnectionLost" });
    });
  });
}

test("a bad token fails connect with 100010 UNAUTHENTICATED", async () => {
  const error = await RoomClient.connect(hub.url, { key: KEY, token: "not.a.token", WebSocket, reconnect: false }).then(() => null, (e) => e);
  assert.ok(error instanceof RoomError);
  assert.equal(error.code, 100010);
  assert.equal(error.reason, "UNAUTHENTICATED");
});
