-- room.update. Params: name (absent = keep it), custom = [{name, json}] where json is the
-- canonical JSON of the new value (absent = remove that property). The room's custom props
-- are the meta hash's `custom` field, a JSON map of name -> the value's canonical JSON (as a
-- member's props are kept), so a change is found by comparing those strings. One updateRoom
-- with only what really changed; nothing changed: no message, no seq.
if not room_exists() then return not_found() end
local op, err = operator_member()
if err then return err end
local raw = redis.call('HGET', K_META, 'custom')
local custom = raw and cjson.decode(raw) or {}
-- The props cap is an argument error (100002), which outranks 100006 (docs/protocol.md §7);
-- an outsider was answered above.
local count = 0
for _ in pairs(custom) do count = count + 1 end
for _, change in ipairs(P.custom or {}) do
  local had = custom[change.name] ~= nil
  if change.json ~= nil and not had then count = count + 1 end
  if change.json == nil and had then count = count - 1 end
end
if count > LIMITS.ROOM_PROPS_MAX then
  return fail(E.INVALID_PARAMETER, 'a room has at most ' .. int(LIMITS.ROOM_PROPS_MAX) ..
    ' custom properties', 'custom')
end
if op and not allowed('update_room', op.role, nil, false) then
  return fail(E.FORBIDDEN, "a '" .. op.role .. "' cannot update the room")
end
local changed = {}
if P.name ~= nil and redis.call('HGET', K_META, 'name') ~= P.name then
  redis.call('HSET', K_META, 'name', P.name)
  changed[#changed + 1] = '"name":' .. cjson.encode(P.name)
end
local props = {}
for _, change in ipairs(P.custom or {}) do
  -- change.json absent removes the prop; removing one that is not there is no change
  if custom[change.name] ~= change.json then
    custom[change.name] = change.json
    props[#props + 1] = cjson.encode(change.name) .. ':' .. (change.json or 'null')
  end
end
if #props > 0 then
  if next(custom) == nil then
    redis.call('HDEL', K_META, 'custom')
  else
    redis.call('HSET', K_META, 'custom', cjson.encode(custom))
  end
  changed[#changed + 1] = '"custom":{' .. table.concat(props, ',') .. '}'
end
if #changed == 0 then return done() end
emit('updateRoom', {}, '{' .. table.concat(changed, ',') .. '}', true, nil)
return done()
