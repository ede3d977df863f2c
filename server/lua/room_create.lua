-- room.create. Params: owner, name, type, members = [{id, nickname, avatar}] (owner first,
-- deduplicated, profiles read by the caller), custom = [{name, json}] (the first room custom
-- props, kept as room.update keeps them: a JSON map of name -> the value's canonical JSON).
if room_exists() then return fail(E.ROOM_EXISTS, "room '" .. P.room .. "' already exists") end
local full = over_cap(P.type, #P.members, 'a')
if full then return full end
redis.call('HSET', K_META, 'name', P.name, 'type', P.type, 'owner', P.owner,
           'created_ms', int(now_ms()), 'seq', 0)
if #P.custom > 0 then
  local custom = {}
  for _, prop in ipairs(P.custom) do custom[prop.name] = prop.json end
  redis.call('HSET', K_META, 'custom', cjson.encode(custom))
end
local targets = {}
for i, profile in ipairs(P.members) do
  put_member(profile.id, new_member(profile, profile.id == P.owner and 'owner' or 'member'))
  targets[i] = profile.id
end
emit('createRoom', targets, '{}', true, nil, targets)
return done()
