-- user.upsert and first-auth registration. KEYS[1] the app's users hash.
-- ARGV[1] user id, ARGV[2] JSON {nickname?, avatar?} to merge, ARGV[3] "1" = only create.
-- __CONSTANTS__
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if raw and ARGV[3] == '1' then return raw end
local user = raw and cjson.decode(raw) or PROFILE_DEFAULTS
for name, value in pairs(cjson.decode(ARGV[2])) do user[name] = value end
raw = cjson.encode(user)
redis.call('HSET', KEYS[1], ARGV[1], raw)
return raw
