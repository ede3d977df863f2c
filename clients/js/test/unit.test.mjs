// The pure parts: the backoff policy (protocol/backoff.py's), de-duplication by seq, the
// camelCase -> wire arg names of the generated op table.
import assert from "node:assert/strict";
import { test } from "node:test";
import { ExponentialBackoff, OPS, wireArgs } from "../dist/index.js";
import { ResumeState } from "../dist/resume.js";

test("backoff: full jitter in [0, min(cap, base * 2**n)), reset after a success", () => {
  const ceilings = new ExponentialBackoff(0.1, 5.0, false);
  assert.deepEqual(Array.from({ length: 8 }, () => ceilings.nextDelay()).map((d) => +d.toFixed(6)), [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5, 5]);
  let r = 0.5;
  const jittered = new ExponentialBackoff(0.1, 5.0, true, () => r);
  assert.equal(jittered.nextDelay(), 0.05);
  assert.equal(jittered.nextDelay(), 0.1);
  r = 0.999;
  assert.ok(jittered.nextDelay() < 0.4);
  jittered.reset();
  assert.equal(jittered.failures, 0);
  assert.ok(jittered.nextDelay() < 0.1);
  assert.throws(() => new ExponentialBackoff(0, 1), RangeError);
});

test("resume state: a seq already delivered is dropped; GONE/ENDS forget the room", () => {
  const s = new ResumeState({ r: 2 });
  const m = (seq, type = "updateRoom", targets = []) => ({ room: "r", seq, type, targets });
  assert.equal(s.accept(m(2)), false);
  assert.equal(s.accept(m(3)), true);
  assert.equal(s.accept(m(3)), false);
  assert.equal(s.accept(m(1)), false);
  assert.deepEqual(s.lastSeqs(), { r: 3 });
  s.user = "me";
  assert.equal(s.ends(m(4, "removeMember", ["other"])), false);
  assert.equal(s.ends(m(4, "removeMember", ["me"])), true);
  assert.equal(s.ends(m(4, "dismissRoom", [])), true);
  s.resync({ room: "r", seq: 10 });
  assert.equal(s.accept(m(10)), false);
  assert.equal(s.accept(m(11)), true);
  s.resync({ room: "r", seq: 0 });
  assert.deepEqual(s.lastSeqs(), {});
});

test("args: top-level camelCase to the op's wire names, nested values untouched, undefined dropped", () => {
  assert.deepEqual(
    wireArgs("member.update", { room: "r", user: "u", properties: { customInfo: 1, x_y: 2 }, systemMessage: true, notificationExtension: undefined }),
    { room: "r", user: "u", properties: { customInfo: 1, x_y: 2 }, system_message: true },
  );
  assert.deepEqual(wireArgs("room.watch", { room: "r", afterSeq: 3 }), { room: "r", after_seq: 3 });
  assert.equal(OPS["room.create"].mutating, true);
  assert.equal(OPS["room.get"].mutating, false);
  assert.equal(OPS["app.rooms"].serverOnly, true);
});
