-- A hub node holds the user's first connection on it (join), or no longer holds any (leave:
-- closed, or the node was reaped): the node's instance goes into or out of the user's online
-- set. The first instance in makes the user online, the last one out offline: that change is
-- published to the app's presence channel in the same atomic step (so every node hears a
-- user's changes in the order they happened), or by the node right after on a sharded
-- cluster. Idempotent.
-- KEYS[1] the user's online set (rh:{app:user}:online: the node instances holding them).
-- ARGV[1] the node instance, ARGV[2] the app's presence channel, ARGV[3] the user id,
-- ARGV[4] "PUBLISH" to publish the change here, or "" when the node publishes it (SPUBLISH on
-- a sharded cluster: the app's channel is not in the user's slot), ARGV[5] "1" join, "0" leave.
-- Returns the change's time (ms, Redis clock) when the user came online (join) or went
-- offline (leave), else 0.
local joining = ARGV[5] == '1'
local moved = redis.call(joining and 'SADD' or 'SREM', KEYS[1], ARGV[1])
if moved == 0 or redis.call('SCARD', KEYS[1]) ~= (joining and 1 or 0) then
  return 0
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if ARGV[4] ~= '' then
  redis.call(ARGV[4], ARGV[2], cjson.encode({user = ARGV[3], online = joining, time_ms = now}))
end
return now
