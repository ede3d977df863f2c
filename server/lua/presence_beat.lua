-- A node's presence heartbeat: renew its deadline, and claim nodes whose deadline passed
-- (they died without closing) so that this node reaps their users. Redis clock throughout.
-- KEYS[1] the live node instances (sorted set, score = deadline ms), KEYS[2] the instances
-- being reaped (sorted set, score = when the reaper's claim lapses: a reaper that dies is
-- replaced after it). Both under one hash tag.
-- ARGV[1] this instance, ARGV[2] the deadline's distance (ms), ARGV[3] "1" to register the
-- instance if it is not there (its first beat), ARGV[4] the most instances claimed per beat.
-- Returns {alive, claimed instance...}: alive 0 when this instance was reaped meanwhile (its
-- users must be registered again, under a new instance).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl, limit = tonumber(ARGV[2]), tonumber(ARGV[4])
local alive = 0
if ARGV[3] == '1' or redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
  alive = 1
end
local reply = {alive}

local function claim(key)
  local room = limit - (#reply - 1)
  if room <= 0 then return end
  for _, instance in ipairs(redis.call('ZRANGEBYSCORE', key, '-inf', now, 'LIMIT', 0, room)) do
    redis.call('ZREM', KEYS[1], instance)
    redis.call('ZADD', KEYS[2], now + ttl, instance)
    reply[#reply + 1] = instance
  end
end

claim(KEYS[1])  -- died without closing
claim(KEYS[2])  -- its reaper died too
return reply
