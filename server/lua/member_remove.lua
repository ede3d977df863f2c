-- member.remove (operator removes user) and room.leave (user leaves; operator = user).
-- Params: user, leave (bool).
local op, target, err = operator_and_target()
if err then return err end
if P.leave then
  if not allowed('leave', target.role, nil, true) then
    return fail(E.FORBIDDEN, 'the owner cannot leave the room')
  end
elseif not allowed('remove', op and op.role or nil, target.role, P.operator == P.user) then
  return fail(E.FORBIDDEN, "not allowed to remove '" .. P.user .. "'" ..
    (op and (' as ' .. op.role) or ''))
end
redis.call('HDEL', K_MEMBERS, P.user)
emit(P.leave and 'leaveRoom' or 'removeMember', {P.user}, '{}', true, nil)
return done()
