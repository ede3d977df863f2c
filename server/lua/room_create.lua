-- room.create. Params: owner, name, type, members = [{id, nickname, avatar}] (owner first,
-- deduplicated, profiles read by the caller).
if room_exists() then return fail(100003, "room '" .. P.room .. "' already exists") end
local cap = P.max_members
if P.type == 'direct' then cap = math.min(cap, 2) end
if #P.members > cap then
  return fail(100012, 'a ' .. P.type .. ' room holds at most ' .. int(cap) .. ' members')
end
redis.call('HSET', K_META, 'name', P.name, 'type', P.type, 'owner', P.owner,
           'created_ms', int(now_ms()), 'seq', 0)
local targets = {}
for i, profile in ipairs(P.members) do
  put_member(profile.id, new_member(profile, profile.id == P.owner and 'owner' or 'member'))
  targets[i] = profile.id
end
emit('createRoom', targets, '{}', true, nil, targets)
return done()
