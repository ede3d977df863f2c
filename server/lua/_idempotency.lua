-- Wraps a mutating room script (the loader puts the script's body in `body`): with
-- P.idem = {id, fp, cap} (the caller's key, the fingerprint of op and args), the first
-- outcome — result or error — is recorded in the room's slot, atomically with the change; a
-- repeat returns it again and changes nothing. KEYS[5] hash id -> record, KEYS[6] sorted set
-- id -> time (for the expiry after LIMITS.IDEMPOTENCY_TTL_MS and the per-room cap).
local K_IDEM, K_IDEM_T = KEYS[5], KEYS[6]
if P.idem == nil then return body() end
local raw = redis.call('HGET', K_IDEM, P.idem.id)
if raw then
  local rec = cjson.decode(raw)
  if rec.fp ~= P.idem.fp then
    return fail(E.INVALID_PARAMETER, 'idempotency_key was already used for another request', 'idempotency_key')
  end
  if rec.code ~= 0 then
    if rec.field ~= '' then return {rec.code, rec.message, rec.field} end
    return {rec.code, rec.message}
  end
  local again = done()
  again[3] = rec.seq
  return again
end
local reply = body()
local rec = {fp = P.idem.fp, code = reply[1], message = '', field = '', seq = 0}
if reply[1] == 0 then rec.seq = reply[3] else
  rec.message = reply[2] or ''
  if type(reply[3]) == 'string' then rec.field = reply[3] end
end
local now = now_ms()
redis.call('HSET', K_IDEM, P.idem.id, cjson.encode(rec))
redis.call('ZADD', K_IDEM_T, now, P.idem.id)
local expired = redis.call('ZRANGEBYSCORE', K_IDEM_T, '-inf', now - LIMITS.IDEMPOTENCY_TTL_MS, 'LIMIT', 0, 64)
local over = redis.call('ZCARD', K_IDEM_T) - #expired - P.idem.cap
if over > 0 then
  for _, id in ipairs(redis.call('ZRANGE', K_IDEM_T, #expired, #expired + over - 1)) do
    expired[#expired + 1] = id
  end
end
if #expired > 0 then
  redis.call('HDEL', K_IDEM, unpack(expired))
  redis.call('ZREM', K_IDEM_T, unpack(expired))
end
redis.call('PEXPIRE', K_IDEM, LIMITS.IDEMPOTENCY_TTL_MS)
redis.call('PEXPIRE', K_IDEM_T, LIMITS.IDEMPOTENCY_TTL_MS)
return reply
