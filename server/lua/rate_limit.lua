-- Exact sliding one-second window (PROTOCOL.md §8), shared by every hub node of an app.
-- KEYS[1] the app's admission log (sorted set: score = admission time in µs, Redis clock).
-- ARGV[1] ceiling per second, ARGV[2] a member id unique to this request.
-- Returns 0 when admitted, else the milliseconds until the oldest admission leaves the window.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local ceiling = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 1000000)
if redis.call('ZCARD', KEYS[1]) < ceiling then
  redis.call('ZADD', KEYS[1], now, ARGV[2])
  redis.call('PEXPIRE', KEYS[1], 2000)
  return 0
end
local oldest = tonumber(redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2])
return math.max(1, math.ceil((oldest + 1000000 - now) / 1000))
