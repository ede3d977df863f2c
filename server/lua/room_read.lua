-- room.get and room.history: one consistent read with the viewer's right to it checked.
-- Params: viewer (absent = server), invitees_may (bool: invitees may read, as for room.get),
-- history = {after, limit} (absent = room.get). History replies {0, '', seq, entries}.
if not room_exists() then return not_found() end
if P.viewer ~= nil and redis.call('HEXISTS', K_MEMBERS, P.viewer) == 0 and
   not (P.invitees_may and redis.call('HEXISTS', K_INVITES, P.viewer) == 1) then
  return fail(100005, "'" .. P.viewer .. "' is not a member of room '" .. P.room .. "'")
end
if P.history then
  local entries = redis.call('XRANGE', K_LOG, '(' .. int(P.history.after) .. '-0', '+',
                             'COUNT', P.history.limit + 1)
  return {0, '', SEQ, entries}
end
return done()
