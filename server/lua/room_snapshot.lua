-- The hub's starting point for following a room: its seq and member ids, read together.
-- Replies {0, '', seq, member ids}.
if not room_exists() then return not_found() end
return {0, '', SEQ, redis.call('HKEYS', K_MEMBERS)}
