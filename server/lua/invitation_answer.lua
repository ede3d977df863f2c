-- invitation.accept / invitation.decline. Params: user (the invitee), accept (bool),
-- profile = {nickname, avatar} (for accept: a new member starts from the user's profile).
if not room_exists() then return not_found() end
if redis.call('HEXISTS', K_INVITES, P.user) == 0 then
  return fail(E.NO_INVITATION, "'" .. P.user .. "' has no pending invitation to room '" .. P.room .. "'")
end
if P.accept then
  local full = over_cap(redis.call('HGET', K_META, 'type'), redis.call('HLEN', K_MEMBERS) + 1, 'the')
  if full then return full end
  redis.call('HDEL', K_INVITES, P.user)
  put_member(P.user, new_member(P.profile, 'member'))
  emit('acceptInvitation', {P.user}, '{}', true, nil, {P.user})
else
  redis.call('HDEL', K_INVITES, P.user)
  emit('declineInvitation', {P.user}, '{}', true, nil, {P.user})
end
return done()
