-- Argo CD health check of a RefreshPlan (a fleet rollout).
-- Healthy: every selected node runs the target (Ready). Degraded: halted by failures, ended with
-- failures, or stalled otherwise (Stalled). Suspended: spec.paused. Progressing: rolling out.
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
local function count(field)
  return tostring(st[field] or 0)
end
local progress = count("succeeded") .. "/" .. count("nodes") .. " nodes refreshed, " .. count("active")
  .. " active, " .. count("failed") .. " failed"
if conds["Ready"] ~= nil and conds["Ready"].status == "True" then
  hs.status = "Healthy"
  hs.message = said(conds["Ready"], progress)
  return hs
end
local stalled = conds["Stalled"] ~= nil and conds["Stalled"].status == "True"
local halted = conds["Paused"] ~= nil and conds["Paused"].status == "True"
  and conds["Paused"].reason == "FailureThresholdReached"
local ended = conds["Progressing"] ~= nil and conds["Progressing"].status == "False"
  and conds["Progressing"].reason == "RefreshFailed"
if stalled or halted or ended then
  hs.status = "Degraded"
  hs.message = progress .. ": " .. said(conds["Stalled"], said(conds["Paused"], "the rollout ended with failures"))
  return hs
end
if obj.spec ~= nil and obj.spec.paused == true then
  hs.status = "Suspended"
  hs.message = "Paused (spec.paused): " .. progress
  return hs
end
hs.message = progress
return hs
