-- invitation.cancel. Params: invitees = [user id]. Every check comes before any write: the
-- operator's role (owners and admins cancel any invitation, a member only those they sent:
-- rules cancel_invitation / cancel_own_invitation), and a pending invitation for every
-- invitee (else 100008 and nothing changes). Then one cancelInvitation, also published to
-- each invitee's inbox (as declineInvitation is) so their connections learn it.
if not room_exists() then return not_found() end
local op, err = operator_member()
if err then return err end
if op and not allowed('cancel_own_invitation', op.role, nil, true) then
  return fail(E.FORBIDDEN, "a '" .. op.role .. "' cannot cancel invitations")
end
-- 100006 outranks 100008 (docs/protocol.md §7): the roles over every pending one first.
local missing = nil
for _, user in ipairs(P.invitees) do
  local raw = redis.call('HGET', K_INVITES, user)
  if not raw then
    missing = missing or user
  elseif op and not allowed('cancel_invitation', op.role, nil, false) and
      cjson.decode(raw).inviter ~= P.operator then
    return fail(E.FORBIDDEN, "not allowed to cancel the invitation of '" .. user .. "' as " .. op.role)
  end
end
if missing then
  return fail(E.NO_INVITATION, "'" .. missing .. "' has no pending invitation to room '" .. P.room .. "'")
end
for _, user in ipairs(P.invitees) do redis.call('HDEL', K_INVITES, user) end
emit('cancelInvitation', P.invitees, '{}', true, nil, P.invitees)
return done()
