-- member.remove (operator removes user) and room.leave (user leaves; operator = user).
-- Params: user, leave (bool).
if not room_exists() then return not_found() end
-- The operator first: an outsider learns nothing of the members or their props.
local op, err = operator_member()
if err then return err end
local target = get_member(P.user)
if target == nil then
  return fail(TARGET_NOT_MEMBER, "'" .. P.user .. "' is not a member of the room")
end
if P.leave then
  if not allowed('leave', target.role, nil, true) then
    return fail(100006, 'the owner cannot leave the room')
  end
elseif not allowed('remove', op and op.role or nil, target.role, P.operator == P.user) then
  return fail(100006, "not allowed to remove '" .. P.user .. "'" ..
    (op and (' as ' .. op.role) or ''))
end
redis.call('HDEL', K_MEMBERS, P.user)
emit(P.leave and 'leaveRoom' or 'removeMember', {P.user}, '{}', true, nil)
return done()
