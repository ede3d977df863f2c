-- room.members: one page of members in id order, read in one step. Params: viewer (absent =
-- server), after (absent = from the first id), limit. Members only (invitees: 100005).
-- Replies {0, '', seq, ids, records, next}: next is the page's last id when more follow,
-- else ''.
if not room_exists() then return not_found() end
if P.viewer ~= nil and redis.call('HEXISTS', K_MEMBERS, P.viewer) == 0 then
  return fail(E.NOT_A_MEMBER, "'" .. P.viewer .. "' is not a member of room '" .. P.room .. "'")
end
-- Lua's `<` on strings is strcoll, i.e. Redis's LC_COLLATE; the order promised is byte order.
local function before(a, b)
  local n = math.min(#a, #b)
  for i = 1, n do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end
local ids = redis.call('HKEYS', K_MEMBERS)
table.sort(ids)
-- In the C (or C.UTF-8) locale that is byte order already: check it in one pass, and sort
-- again by bytes only where the locale collates otherwise.
for i = 2, #ids do
  if before(ids[i], ids[i - 1]) then
    table.sort(ids, before)
    break
  end
end
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
