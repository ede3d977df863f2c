-- A hub node holds the user's first connection on it: note the node in the user's online set;
-- the first node anywhere makes the user online, published to the app's presence channel in
-- the same atomic step (so every node hears a user's changes in the order they happened).
-- KEYS[1] the user's online set (rh:{app:user}:online: the node instances holding them).
-- ARGV[1] the node instance, ARGV[2] the app's presence channel, ARGV[3] the user id,
-- ARGV[4] "PUBLISH" to publish the change here, or "" when the node publishes it (SPUBLISH on
-- a sharded cluster: the app's channel is not in the user's slot).
-- Returns the change's time (ms, Redis clock) when the user came online, else 0.
if redis.call('SADD', KEYS[1], ARGV[1]) == 0 or redis.call('SCARD', KEYS[1]) ~= 1 then
  return 0
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if ARGV[4] ~= '' then
  redis.call(ARGV[4], ARGV[2], cjson.encode({user = ARGV[3], online = true, time_ms = now}))
end
return now
