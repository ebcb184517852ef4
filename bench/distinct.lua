-- wrk script: closed-loop POSTs cycling through many distinct OpenAI chat bodies.
--   wrk -t1 -cC -dDs -s distinct.lua URL -- BODIES_FILE MAX_REQUESTS
-- BODIES_FILE: one JSON request body per line; request k sends line k (mod the count), so no
--              two requests in a row share a prompt (nothing downstream can cache it).
-- Prints one line "WRKJSON {...}" like the shared harness's chat.lua.
local threads = {}
function setup(thread) table.insert(threads, thread) end

local reqs, n, count, max_requests, capped = {}, 0, 0, 0, 0

function init(args)
  max_requests = tonumber(args[2] or "0") or 0
  local headers = { ["Content-Type"] = "application/json" }
  for line in io.lines(args[1]) do
    if #line > 0 then
      n = n + 1
      reqs[n] = wrk.format("POST", nil, headers, line)
    end
  end
end

function request()
  count = count + 1
  if max_requests > 0 and count > max_requests then
    capped = 1
    wrk.thread:stop()
  end
  return reqs[(count - 1) % n + 1]
end

function done(summary, latency, requests)
  local sent, cap = 0, 0
  for _, t in ipairs(threads) do
    sent = sent + (t:get("count") or 0)
    cap = cap + (t:get("capped") or 0)
  end
  local e = summary.errors
  local secs = summary.duration / 1e6
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_s":%.3f,"rps":%.2f,"bytes":%d,' ..
    '"lat_ms":{"mean":%.3f,"p50":%.3f,"p90":%.3f,"p95":%.3f,"p99":%.3f,"max":%.3f},' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"requests_sent":%d,"capped":%s}\n',
    summary.requests, secs, summary.requests / secs, summary.bytes,
    latency.mean / 1000, latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(95) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    e.connect, e.read, e.write, e.status, e.timeout, sent, cap > 0 and "true" or "false"))
end
