-- wrk load for bench/ingest_bench.py: `POST /events`, one event per request, every event with
-- its own id. Each wrk thread gets a number in `setup` and counts its requests, so the id is
--   INGEST_BENCH_ID_BASE + thread * 10^10 + n      (n = 1, 2, ... within the thread)
-- The driver gives every wrk run its own base (a multiple of 10^12), so ids stay unique across
-- the warmup and the measured runs too; what lands in the sink can be checked for duplicates.
-- The report line comes from wrk-report.lua's `done` (WRK_REPORT_LUA, or the file next to this
-- one).

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(os.getenv("WRK_REPORT_LUA") or (here .. "wrk-report.lua"))

wrk.method = "POST"
wrk.path = "/events"
wrk.headers["Content-Type"] = "application/json"

-- Main Lua state: number the threads as wrk creates them.
local threads = 0
function setup(thread)
  thread:set("thread_id", threads)
  threads = threads + 1
end

-- Thread Lua states: `thread_id` was set by `setup` before the first request.
local base = tonumber(os.getenv("INGEST_BENCH_ID_BASE") or "0")
local n = 0
function request()
  n = n + 1
  local id = string.format("%.0f", base + thread_id * 1e10 + n)
  return wrk.format(nil, nil, nil,
    '{"type":"page_view","timestamp":1700000000000,"id":' .. id .. ',"path":"/pricing"}')
end
