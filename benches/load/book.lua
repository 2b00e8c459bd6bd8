-- wrk script: POST the example appointment with a fresh business identifier each time, so every
-- request is a new booking (none is answered from the store). Counts answers by status.
-- FSP_LOAD_GET=/fhir/metadata sends that GET instead; FSP_LOAD_DELAY_MS=N waits N ms after each
-- answer on each connection (a steady rate below the peak, for latency at a given load).
local template = nil
local counter = 0
statuses = {}
local threads = {}

function setup(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  local f = assert(io.open(os.getenv("FSP_LOAD_BODY"), "r"))
  template = f:read("*a")
  f:close()
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/fhir+json"
  wrk.headers["X-API-Key"] = os.getenv("FSP_LOAD_KEY")
  run = os.getenv("FSP_LOAD_RUN") or "0"
  get = os.getenv("FSP_LOAD_GET")
  if get == "" then get = nil end
  pause = tonumber(os.getenv("FSP_LOAD_DELAY_MS") or "0")
end

function delay()
  return pause
end

function request()
  if get then
    return wrk.format("GET", get, {["Accept"] = "application/fhir+json"}, nil)
  end
  counter = counter + 1
  local body = string.gsub(template, "A%-2025%-07%-21%-0001", "L-" .. run .. "-" .. id .. "-" .. counter, 1)
  return wrk.format(nil, "/fhir/Appointment", nil, body)
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local totals = {}
  for _, thread in ipairs(threads) do
    local s = thread:get("statuses")
    for status, n in pairs(s) do
      totals[status] = (totals[status] or 0) + n
    end
  end
  for status, n in pairs(totals) do
    io.stderr:write(string.format("status %d: %d\n", status, n))
  end
  io.stderr:write(string.format("p50 %.2f ms, p99 %.2f ms\n", latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
