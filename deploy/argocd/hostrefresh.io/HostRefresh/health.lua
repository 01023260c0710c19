-- Argo CD health check of a HostRefresh (one node's refresh).
-- Healthy: Succeeded. Degraded: Failed, RolledBack, or held after a failure (Stalled).
-- Suspended: spec.paused. Progressing: anything on its way, or not yet observed by the operator.
local hs = { status = "Progressing", message = "Waiting for the hostrefresh operator" }
if obj.status == nil then
  return hs
end
local st = obj.status
if obj.metadata ~= nil and obj.metadata.generation ~= nil and st.observedGeneration ~= nil
    and st.observedGeneration < obj.metadata.generation then
  hs.message = "Waiting for the operator to observe the latest spec"
  return hs
end
local conds = {}
if st.conditions ~= nil then
  for _, c in ipairs(st.conditions) do
    conds[c.type] = c
  end
end
local function said(c, fallback)
  if c ~= nil and c.message ~= nil and c.message ~= "" then
    return c.message
  end
  return fallback
end
local phase = st.phase or "Pending"
if phase == "Succeeded" then
  hs.status = "Healthy"
  hs.message = said(conds["Ready"], "Refreshed")
  return hs
end
if phase == "Failed" or phase == "RolledBack" then
  hs.status = "Degraded"
  hs.message = phase .. ": " .. said(conds["Degraded"], said(conds["Stalled"], "the refresh did not succeed"))
  return hs
end
if conds["Stalled"] ~= nil and conds["Stalled"].status == "True" then
  hs.status = "Degraded"
  hs.message = said(conds["Stalled"], "Stalled")
  return hs
end
if obj.spec ~= nil and obj.spec.paused == true then
  hs.status = "Suspended"
  hs.message = "Paused (spec.paused) in phase " .. phase
  return hs
end
hs.message = "Phase " .. phase
local progressing = conds["Progressing"]
if progressing ~= nil and progressing.message ~= nil and progressing.message ~= "" then
  hs.message = hs.message .. ": " .. progressing.message
end
return hs
