// The TypeScript client's browser bundle, as the hub serves it, driven from a page: the
// test calls window.scenario(...) and asserts what the page saw.
import { RoomClient, RoomError } from "/console/roomhub-client.js"; // the hub's bytes

window.scenario = async function scenario({ url, key, token, encoding, room }) {
  const seen = { states: [], events: [], iterated: [] };
  const client = await RoomClient.connect(url, { key, token, encoding, reconnect: false });
  client.on("state", (state) => seen.states.push(state));
  client.on("system", (msg) => seen.events.push(msg));
  const iterator = client.messages()[Symbol.asyncIterator]();
  try {
    for (const id of ["alice", "bob", "carol"]) await client.upsertUser({ id, nickname: id.toUpperCase() });
    const created = await client.createRoom({ room, name: "In a page", owner: "alice", members: ["bob"] });
    seen.created = { id: created.id, seq: created.seq, members: created.members.map((m) => [m.id, m.role]) };
    const watched = await client.watchRoom({ room });
    seen.watchedSeq = watched.seq;
    await client.addMembers({ room, invitees: ["carol"], invitationRequired: true, systemMessage: true });
    await client.acceptInvitation({ room, operator: "carol" });
    await client.updateMember({ room, user: "bob", properties: { role: "admin", score: 7 }, systemMessage: true });
    for (let i = 0; i < 4; i++) {
      const { value } = await iterator.next();
      seen.iterated.push([value.seq, value.type]);
    }
    const page = await client.appRooms({ prefix: room, limit: 10 });
    seen.appRooms = page.rooms.map((r) => r.id);
    const got = await client.call("room.get", { room });
    seen.members = got.members.map((m) => [m.id, m.role, m.props]);
    try {
      await client.createRoom({ room, owner: "alice" });
      seen.error = null;
    } catch (err) {
      seen.error = { isRoomError: err instanceof RoomError, code: err.code, reason: err.reason, message: err.message };
    }
  } finally {
    client.close();
  }
  return seen;
};
document.getElementById("status").textContent = "ready";
