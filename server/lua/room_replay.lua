-- Resume (auth `resume`): the room's seq, whether the user is a member now, and the
-- retained messages after `after` — read together, so the caller can tell which of them the
-- user may see. Params: user, after, limit. Replies {0, '', seq, is_member (0/1), entries}.
-- A non-member gets no entries (a resume must not read the history of a room one is not in),
-- nor does a resume that is ahead of the room or further behind it than `limit`: the caller
-- answers those with `resync` without reading the log.
if not room_exists() then return not_found() end
local is_member = redis.call('HEXISTS', K_MEMBERS, P.user)
if is_member == 0 or P.after >= SEQ or SEQ - P.after > P.limit then
  return {0, '', SEQ, is_member, {}}
end
local entries = redis.call('XRANGE', K_LOG, '(' .. int(P.after) .. '-0', '+', 'COUNT', P.limit)
return {0, '', SEQ, is_member, entries}
