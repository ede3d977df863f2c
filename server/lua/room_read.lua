-- room.get and room.history: one consistent read with the viewer's right to it checked.
-- Params: viewer (absent = server); for room.history after_seq and limit (absent = room.get,
-- which invitees may read too). History replies {0, '', seq, entries}.
if not room_exists() then return not_found() end
if P.viewer ~= nil and redis.call('HEXISTS', K_MEMBERS, P.viewer) == 0 and
   not (P.limit == nil and redis.call('HEXISTS', K_INVITES, P.viewer) == 1) then
  return fail(E.NOT_A_MEMBER, "'" .. P.viewer .. "' is not a member of room '" .. P.room .. "'")
end
if P.limit then
  local entries = redis.call('XRANGE', K_LOG, '(' .. int(P.after_seq) .. '-0', '+',
                             'COUNT', P.limit + 1)
  return {0, '', SEQ, entries}
end
return done()
