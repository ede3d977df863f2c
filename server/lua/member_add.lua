-- member.add. Params: invitees = [{id, nickname, avatar}], invitation (bool), notify (bool),
-- max_invites and max_invites_per_inviter (pending invitations a user may leave; 0 = no cap).
if not room_exists() then return not_found() end
local op, err = operator_member()
if err then return err end
if op and not allowed('invite', op.role, nil, false) then
  return fail(E.FORBIDDEN, "a '" .. op.role .. "' cannot add members")
end
local room_type = redis.call('HGET', K_META, 'type')
local invitation = P.invitation and room_type ~= 'direct'
local fresh = {}
for _, profile in ipairs(P.invitees) do
  local is_member = redis.call('HEXISTS', K_MEMBERS, profile.id) == 1
  local is_invited = redis.call('HEXISTS', K_INVITES, profile.id) == 1
  if not is_member and not (invitation and is_invited) then fresh[#fresh + 1] = profile end
end
if #fresh == 0 then return done() end
local ids = {}
for i, profile in ipairs(fresh) do ids[i] = profile.id end
if invitation and P.operator ~= nil then
  -- Quotas on what users may leave pending (server calls are unchecked).
  if P.max_invites > 0 and redis.call('HLEN', K_INVITES) + #ids > P.max_invites then
    return fail(E.ROOM_FULL, 'the room holds at most ' .. int(P.max_invites) .. ' pending invitations')
  end
  if P.max_invites_per_inviter > 0 then
    local mine = 0
    for _, raw in ipairs(redis.call('HVALS', K_INVITES)) do
      if cjson.decode(raw).inviter == P.sender then mine = mine + 1 end
    end
    if mine + #ids > P.max_invites_per_inviter then
      return fail(E.ROOM_FULL, 'one inviter may have at most ' .. int(P.max_invites_per_inviter) ..
        ' pending invitations in a room')
    end
  end
end
if invitation then
  for _, id in ipairs(ids) do
    redis.call('HSET', K_INVITES, id, cjson.encode({inviter = P.sender, time_ms = now_ms()}))
  end
  emit('inviteMember', ids, '{}', P.notify, nil, ids)
  return done()
end
local full = over_cap(room_type, redis.call('HLEN', K_MEMBERS) + #fresh, 'the')
if full then return full end
for _, profile in ipairs(fresh) do
  redis.call('HDEL', K_INVITES, profile.id)
  put_member(profile.id, new_member(profile, 'member'))
end
emit('addMember', ids, '{}', P.notify, nil, ids)
return done()
