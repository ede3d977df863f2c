-- room.dismiss. No params of its own: the operator must be the owner (none: an unchecked
-- server call). Emits dismissRoom (targets: every member; changes.invitees: the pending
-- invitees, whose inboxes get it too, as they may follow no room of this node), then deletes
-- every key of the room: meta, members, invites, log and the idempotency records (KEYS[5],
-- KEYS[6]) — the wrapper records this op's outcome after the body, so a retry still finds it,
-- and a room.create of the same id starts from seq 1 on an empty log.
-- Replies {0, '', seq, 'dismissed', member ids, invitee ids}: the service unindexes them (a
-- repeat answered from the record has no ids, and needs none: the first run unindexed them).
if not room_exists() then return not_found() end
local op, err = operator_member()
if err then return err end
if op and not allowed('dismiss', op.role, nil, false) then
  return fail(E.FORBIDDEN, "only the owner can dismiss the room, not a '" .. op.role .. "'")
end
local members = redis.call('HKEYS', K_MEMBERS)
local invitees = redis.call('HKEYS', K_INVITES)
table.sort(members)
table.sort(invitees)
emit('dismissRoom', members, '{"invitees":' .. json_list(invitees) .. '}', true, nil, invitees)
redis.call('DEL', K_META, K_MEMBERS, K_INVITES, K_LOG, KEYS[5], KEYS[6])
return {0, '', SEQ, 'dismissed', members, invitees}
