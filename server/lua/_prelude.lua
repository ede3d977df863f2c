-- Shared by every room script; the loader prepends it to each, with the role table and the
-- constants of roomhub.protocol (LIMITS, MEMBER_DEFAULTS, the error codes E) written in.
-- KEYS[1] meta hash, KEYS[2] members hash, KEYS[3] invites hash, KEYS[4] log stream:
-- all under one hash tag {app:room}, so a script touches one cluster slot.
-- ARGV[1] JSON params: the fields of the script's params class (server/store/scripts.py),
-- room and reply; for a change also sender, operator (absent = unchecked server call),
-- history_max, max_members, room_channel, user_channel_prefix/suffix, room_publish (absent =
-- PUBLISH; SPUBLISH on a Redis Cluster >= 7.0: the room channel is in the room's slot).
-- Returns {0, "", seq, meta, members, invites} (room state only for reply "room"),
-- or {code, message[, field]} on failure; nothing is written before every check has passed.
local POLICY = cjson.decode([==[__POLICY__]==])
-- __CONSTANTS__
local P = cjson.decode(ARGV[1])
local K_META, K_MEMBERS, K_INVITES, K_LOG = KEYS[1], KEYS[2], KEYS[3], KEYS[4]

local function int(n) return string.format('%d', n) end

local NOW
local function now_ms()
  if not NOW then
    local t = redis.call('TIME')
    NOW = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  return NOW
end

local function fail(code, message, field) return {code, message, field} end

local function allowed(action, op_role, target_role, on_self)
  local rule = POLICY.rules[action]
  if rule == nil or rule.nobody then return false end
  if rule.spare_owner and target_role == 'owner' then return false end
  if op_role == nil then return true end
  if not rule.roles[op_role] then return false end
  if on_self then return rule.on_self end
  if rule.outrank and target_role ~= nil then
    return POLICY.rank[op_role] > POLICY.rank[target_role]
  end
  return true
end

local function room_exists() return redis.call('EXISTS', K_META) == 1 end

local function not_found()
  return fail(E.ROOM_NOT_FOUND, "room '" .. P.room .. "' does not exist")
end

local function get_member(user)
  local raw = redis.call('HGET', K_MEMBERS, user)
  if raw then return cjson.decode(raw) end
  return nil
end

local function new_member(profile, role)
  local member = {}
  for name, value in pairs(MEMBER_DEFAULTS) do member[name] = value end
  member.role, member.props, member.joined_ms = role, {}, now_ms()
  member.nickname = profile.nickname or member.nickname
  member.avatar = profile.avatar or member.avatar
  return member
end

local function put_member(user, member)
  redis.call('HSET', K_MEMBERS, user, cjson.encode(member))
end

-- The checked operator's member record; nil with no error for an unchecked server call.
local function operator_member()
  if P.operator == nil then return nil, nil end
  local m = get_member(P.operator)
  if m == nil then return nil, fail(E.NOT_A_MEMBER, "operator '" .. P.operator .. "' is not a member of the room") end
  return m, nil
end

-- For an op on the member P.user: the operator's record (nil: unchecked), the target's, or
-- an error. The operator first: an outsider learns nothing of the members or their props.
local function operator_and_target()
  if not room_exists() then return nil, nil, not_found() end
  local op, err = operator_member()
  if err then return nil, nil, err end
  local target = get_member(P.user)
  if target == nil then
    return nil, nil, fail(E.NOT_A_MEMBER, "'" .. P.user .. "' is not a member of the room")
  end
  return op, target, nil
end

-- 100012 if a room of this type cannot hold `count` members; `article` starts the message.
local function over_cap(room_type, count, article)
  local cap = P.max_members
  if room_type == 'direct' then cap = math.min(cap, LIMITS.DIRECT_ROOM_MAX_MEMBERS) end
  if count <= cap then return nil end
  return fail(E.ROOM_FULL, article .. ' ' .. room_type .. ' room holds at most ' .. int(cap) .. ' members')
end

local function json_list(items)
  local parts = {}
  for i, item in ipairs(items) do parts[i] = cjson.encode(item) end
  return '[' .. table.concat(parts, ',') .. ']'
end

local SEQ = tonumber(redis.call('HGET', K_META, 'seq') or '0')

-- Append a system message to the log and publish it: to the room's channel, and to the
-- inbox of each `newcomers` user, whose hub node may not follow this room yet. An inbox is in
-- the user's slot, not the room's, so it always gets a classic PUBLISH (which a cluster
-- forwards to every node); only the room's channel can be a shard channel.
local function emit(mtype, targets, changes_json, notify, extension_json, newcomers)
  SEQ = SEQ + 1
  local msg = '{"room":' .. cjson.encode(P.room) .. ',"seq":' .. int(SEQ) ..
    ',"type":"' .. mtype .. '","sender":' .. cjson.encode(P.sender) ..
    ',"targets":' .. json_list(targets) .. ',"changes":' .. changes_json ..
    ',"notify":' .. (notify and 'true' or 'false') ..
    ',"extension":' .. (extension_json or 'null') .. ',"time_ms":' .. int(now_ms()) .. '}'
  redis.call('HSET', K_META, 'seq', SEQ)
  redis.call('XADD', K_LOG, 'MAXLEN', P.history_max, int(SEQ) .. '-0', 'm', msg)
  redis.call(P.room_publish or 'PUBLISH', P.room_channel, msg)
  for _, user in ipairs(newcomers or {}) do
    redis.call('PUBLISH', P.user_channel_prefix .. user .. P.user_channel_suffix, msg)
  end
end

local function done()
  if P.reply == 'room' then
    return {0, '', SEQ, redis.call('HGETALL', K_META), redis.call('HGETALL', K_MEMBERS),
            redis.call('HGETALL', K_INVITES)}
  end
  return {0, '', SEQ}
end
