-- invitation.accept / invitation.decline. Params: user (the invitee), accept (bool),
-- profile = {nickname, avatar} (for accept: a new member starts from the user's profile).
if not room_exists() then return not_found() end
if redis.call('HEXISTS', K_INVITES, P.user) == 0 then
  return fail(100008, "'" .. P.user .. "' has no pending invitation to room '" .. P.room .. "'")
end
if P.accept then
  local cap = P.max_members
  local room_type = redis.call('HGET', K_META, 'type')
  if room_type == 'direct' then cap = math.min(cap, 2) end
  if redis.call('HLEN', K_MEMBERS) + 1 > cap then
    return fail(100012, 'the ' .. room_type .. ' room holds at most ' .. int(cap) .. ' members')
  end
  redis.call('HDEL', K_INVITES, P.user)
  put_member(P.user, new_member(P.profile, 'member'))
  emit('acceptInvitation', {P.user}, '{}', true, nil, {P.user})
else
  redis.call('HDEL', K_INVITES, P.user)
  emit('declineInvitation', {P.user}, '{}', true, nil, {P.user})
end
return done()
