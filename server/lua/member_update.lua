-- member.update. Params: user (target), changes = [{name, builtin, json}] where json is the
-- canonical JSON of the new value (absent = remove a custom prop), notify, extension_json.
-- Emits the role message first, then one updateMember with what really changed.
local op, target, err = operator_and_target()
if err then return err end
-- The props limit is an argument error (100002), which outranks 100006 (docs/protocol.md §7); an outsider was answered above.
if type(target.props) ~= 'table' then target.props = {} end
local count = 0
for _ in pairs(target.props) do count = count + 1 end
for _, change in ipairs(P.changes) do
  if not change.builtin then
    local had = target.props[change.name] ~= nil
    if change.json ~= nil and not had then count = count + 1 end
    if change.json == nil and had then count = count - 1 end
  end
end
if count > LIMITS.PROPS_PER_MEMBER then
  return fail(E.INVALID_PARAMETER, 'a member has at most ' .. int(LIMITS.PROPS_PER_MEMBER) ..
    ' custom props', 'properties')
end
local op_role = op and op.role or nil
local on_self = P.operator ~= nil and P.operator == P.user
for _, change in ipairs(P.changes) do
  local action = 'profile'
  if change.name == 'role' then action = 'role:' .. cjson.decode(change.json)
  elseif change.name == 'level' then action = 'level' end
  if not allowed(action, op_role, target.role, on_self) then
    return fail(E.FORBIDDEN, "not allowed to set '" .. change.name .. "' of '" .. P.user .. "'" ..
      (op_role and (' as ' .. op_role) or ''))
  end
end
local old_role, new_role = target.role, target.role
local changed = {}
for _, change in ipairs(P.changes) do
  if change.name == 'role' then
    new_role = cjson.decode(change.json)
  elseif change.builtin then
    local value = cjson.decode(change.json)
    if target[change.name] ~= value then
      target[change.name] = value
      changed[#changed + 1] = cjson.encode(change.name) .. ':' .. change.json
    end
  elseif target.props[change.name] ~= change.json then
    -- change.json absent removes the prop; removing one that is not there is no change
    target.props[change.name] = change.json
    changed[#changed + 1] = cjson.encode(change.name) .. ':' .. (change.json or 'null')
  end
end
if new_role == old_role and #changed == 0 then return done() end
target.role = new_role
put_member(P.user, target)
if new_role ~= old_role then
  local mtype = 'setRole'
  if new_role == 'admin' then mtype = 'assignAdmin'
  elseif old_role == 'admin' then mtype = 'revokeAdmin' end
  emit(mtype, {P.user}, '{"role":' .. cjson.encode(new_role) .. '}',
       P.notify or mtype == 'assignAdmin', P.extension_json)
end
if #changed > 0 then
  emit('updateMember', {P.user}, '{' .. table.concat(changed, ',') .. '}', P.notify,
       P.extension_json)
end
return done()
