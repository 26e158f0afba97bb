-- wrk script of `make bench`: session cookie, method and JSON body from the environment, and the
-- result (counts, errors, latency percentiles in microseconds) written as JSON to BENCH_OUT.
local cookie = os.getenv("BENCH_COOKIE") or ""
local body = os.getenv("BENCH_BODY") or ""
local out = os.getenv("BENCH_OUT") or "wrk-result.json"

wrk.method = os.getenv("BENCH_METHOD") or "GET"
wrk.headers["Accept"] = "application/json"
if cookie ~= "" then
  wrk.headers["Cookie"] = "session_token=" .. cookie
end
if body ~= "" then
  wrk.body = body
  wrk.headers["Content-Type"] = "application/json"
end

-- Status codes per thread (response() runs in each thread's own Lua state), read back in done().
local threads = {}
function setup(thread)
  threads[#threads + 1] = thread
end
function init(args)
  statuses = {}
end
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

local points = {}
for p = 1, 99 do points[#points + 1] = p end
for _, p in ipairs({99.5, 99.9, 99.99, 100}) do points[#points + 1] = p end

function done(summary, latency, requests)
  local pct = {}
  for _, p in ipairs(points) do
    pct[#pct + 1] = string.format('"%s": %d', tostring(p), latency:percentile(p))
  end
  local counts = {}
  for _, thread in ipairs(threads) do
    for code, n in pairs(thread:get("statuses") or {}) do
      counts[code] = (counts[code] or 0) + n
    end
  end
  local codes = {}
  for code, n in pairs(counts) do
    codes[#codes + 1] = string.format('"%d": %d', code, n)
  end
  local e = summary.errors
  local f = assert(io.open(out, "w"))
  f:write(string.format(
    '{"requests": %d, "duration_us": %d, "bytes": %d, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, "statuses": {%s}, ' ..
    '"latency_us": {"min": %d, "max": %d, "mean": %.1f, "stdev": %.1f, "percentiles": {%s}}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout, table.concat(codes, ", "),
    latency.min, latency.max, latency.mean, latency.stdev, table.concat(pct, ", ")))
  f:close()
end
