-- Resume (auth `resume`): the room's seq, whether the user is a member now, and the
-- retained messages after `after` — read together, so the caller can tell which of them the
-- user may see. Params: user, after. Replies {0, '', seq, is_member (0/1), entries}.
if not room_exists() then return not_found() end
local entries = redis.call('XRANGE', K_LOG, '(' .. int(P.after) .. '-0', '+')
return {0, '', SEQ, redis.call('HEXISTS', K_MEMBERS, P.user), entries}
