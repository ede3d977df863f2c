-- room.members: one page of members in id order, read in one step. Params: viewer (absent =
-- server), after (absent = from the first id), limit. Members only (invitees: 100005).
-- Replies {0, '', seq, ids, records, next}: next is the page's last id when more follow,
-- else ''.
if not room_exists() then return not_found() end
if P.viewer ~= nil and redis.call('HEXISTS', K_MEMBERS, P.viewer) == 0 then
  return fail(E.NOT_A_MEMBER, "'" .. P.viewer .. "' is not a member of room '" .. P.room .. "'")
end
-- The order promised is byte order. Lua's `<` on strings is strcoll (Redis's LC_COLLATE):
-- byte order in the C locales, where the native sort is used; a locale that orders these
-- probes (id characters in byte order, and pairs that punctuation-blind or case-blind
-- collations swap) otherwise gets the slower sort by bytes.
local PROBES = {'-', '.', '0', '9', ':', '@', 'A', 'Z', '_', 'a', 'a-z', 'a.a', 'aZ', 'a_', 'aa', 'z'}
local function before(a, b)
  local n = math.min(#a, #b)
  for i = 1, n do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end
local native = true
for i = 2, #PROBES do
  if not (PROBES[i - 1] < PROBES[i]) then native = false end
end
local ids = redis.call('HKEYS', K_MEMBERS)
if native then table.sort(ids) else table.sort(ids, before) end
local first = 1
if P.after ~= nil then
  -- the first id after `after`: a binary search (`after` need not be a member any more)
  local lo, hi = 1, #ids + 1
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if before(P.after, ids[mid]) then hi = mid else lo = mid + 1 end
  end
  first = lo
end
local last = math.min(#ids, first + P.limit - 1)
local page = {}
for i = first, last do page[#page + 1] = ids[i] end
local records = {}
if #page > 0 then records = redis.call('HMGET', K_MEMBERS, unpack(page)) end
local after_page = ''
if last < #ids and #page > 0 then after_page = page[#page] end
return {0, '', SEQ, page, records, after_page}
