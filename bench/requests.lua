-- wrk script: send the requests listed in a file (METHOD<TAB>PATH<TAB>BODY per line), each
-- thread taking every n-th one, so that no two requests of a run repeat until the list wraps.
-- Arguments: THREADS FILE [BEARER_KEY]. Prints one BENCH_JSON line with the figures.
local thread_count = 0

function setup(thread)
  thread:set("offset", thread_count)
  thread_count = thread_count + 1
end

function init(args)
  local stride = tonumber(args[1])
  local headers = { ["Content-Type"] = "application/json" }
  if args[3] then headers["Authorization"] = "Bearer " .. args[3] end
  requests = {}
  local index = 0
  for line in io.lines(args[2]) do
    if index % stride == offset then
      local method, path, body = line:match("^([^\t]*)\t([^\t]*)\t?(.*)$")
      if body == "" then body = nil end
      requests[#requests + 1] = wrk.format(method, path, headers, body)
    end
    index = index + 1
  end
  position = 0
end

function request()
  position = position % #requests + 1
  return requests[position]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, ' ..
    '"socket_errors": %d, "non2xx": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout, e.status))
end
