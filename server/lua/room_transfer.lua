-- room.transfer. Params: user (the new owner, `to`). The operator must be the owner (none: an
-- unchecked server call); the target must be a member. One script does the whole swap, so no
-- interleaving op can see two owners or none: the old owner becomes admin, the target owner,
-- meta `owner` the target, and one transferOwner (targets {to, old}) records it.
-- To the current owner: no change, no message.
local op, target, err = operator_and_target()
if err then return err end
if op and not allowed('transfer', op.role, nil, false) then
  return fail(E.FORBIDDEN, "only the owner can transfer the room, not a '" .. op.role .. "'")
end
local old = redis.call('HGET', K_META, 'owner')
if old == P.user then return done() end
local previous = get_member(old)
if previous ~= nil then
  previous.role = 'admin'
  put_member(old, previous)
end
target.role = 'owner'
put_member(P.user, target)
redis.call('HSET', K_META, 'owner', P.user)
emit('transferOwner', {P.user, old},
     '{"owner":' .. cjson.encode(P.user) .. ',"previous_owner":' .. cjson.encode(old) .. '}',
     true, nil)
return done()
