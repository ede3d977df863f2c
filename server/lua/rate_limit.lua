-- Exact sliding one-second windows (docs/protocol.md §8), shared by every hub node of an app:
-- the user's own window first, then the app's, so an op refused for the user takes nothing
-- from the app's ceiling and one user cannot use all of it.
-- KEYS[1] the app's admission log, KEYS[2] the user's (sorted sets: score = admission time in
-- µs, Redis clock; both under the app's hash tag, one slot).
-- ARGV[1] app ceiling per second (0 = none), ARGV[2] a member id unique to this request,
-- ARGV[3] user ceiling per second (0 = none).
-- Returns 0 when admitted; else the milliseconds until a slot frees up: positive for the app's
-- window, negative for the user's.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])

local function wait_ms(key, ceiling)
  if ceiling <= 0 then return 0 end
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - 1000000)
  if redis.call('ZCARD', key) < ceiling then return 0 end
  local oldest = tonumber(redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')[2])
  return math.max(1, math.ceil((oldest + 1000000 - now) / 1000))
end

local app_ceiling, user_ceiling = tonumber(ARGV[1]), tonumber(ARGV[3])
local user_wait = wait_ms(KEYS[2], user_ceiling)
if user_wait > 0 then return -user_wait end
local app_wait = wait_ms(KEYS[1], app_ceiling)
if app_wait > 0 then return app_wait end
for i, ceiling in ipairs({app_ceiling, user_ceiling}) do
  if ceiling > 0 then
    redis.call('ZADD', KEYS[i], now, ARGV[2])
    redis.call('PEXPIRE', KEYS[i], 2000)
  end
end
return 0
