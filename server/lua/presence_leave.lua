-- A hub node no longer holds any connection of the user (closed, or the node was reaped):
-- take the node out of the user's online set; the last one out makes the user offline,
-- published to the app's presence channel in the same atomic step (on a sharded cluster, by
-- the node right after). Idempotent.
-- KEYS[1] the user's online set (rh:{app:user}:online).
-- ARGV[1] the node instance, ARGV[2] the app's presence channel, ARGV[3] the user id,
-- ARGV[4] "PUBLISH" to publish the change here, or "" when the node publishes it (SPUBLISH on
-- a sharded cluster: the app's channel is not in the user's slot).
-- Returns the change's time (ms, Redis clock) when the user went offline, else 0.
if redis.call('SREM', KEYS[1], ARGV[1]) == 0 or redis.call('SCARD', KEYS[1]) ~= 0 then
  return 0
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if ARGV[4] ~= '' then
  redis.call(ARGV[4], ARGV[2], cjson.encode({user = ARGV[3], online = false, time_ms = now}))
end
return now
