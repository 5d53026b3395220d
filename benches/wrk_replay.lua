-- Replays requests written by `holdfast-bench --dump-requests FILE` with wrk, to cross-check
-- holdfast-bench's figures with a client of known, small cost per request:
--
--   holdfast-bench --url http://127.0.0.1:PORT --secret "$SECRET" --events 60000 \
--       --dump-requests /tmp/requests.bin
--   wrk -t2 -c64 -d5s --latency -s benches/wrk_replay.lua http://127.0.0.1:PORT -- /tmp/requests.bin 2
--
-- The second argument is wrk's thread count (-t): thread k sends requests k, k+t, k+2t, …
-- so no two threads send the same event. A thread that runs out starts its share again:
-- those requests are duplicates (answered 200 "duplicate": still a durable check of the log,
-- but no insert), so dump more requests than the run sends (the summary says how many were
-- repeats).

local counter = 0
local threads = {}

function setup(thread)
   thread:set("id", counter)
   counter = counter + 1
   table.insert(threads, thread)
end

function init(args)
   local path = args[1] or error("usage: wrk ... -s wrk_replay.lua URL -- FILE THREADS")
   local nthreads = tonumber(args[2] or "1")
   local f = assert(io.open(path, "rb"))
   local data = f:read("*a")
   f:close()
   reqs = {}
   local pos, i = 1, 0
   while pos <= #data do
      local nl = data:find("\n", pos, true)
      local len = tonumber(data:sub(pos, nl - 1))
      if i % nthreads == id then
         reqs[#reqs + 1] = data:sub(nl + 1, nl + len)
      end
      pos = nl + len + 1
      i = i + 1
   end
   have = #reqs
   sent = 0
end

function request()
   sent = sent + 1
   return reqs[(sent - 1) % #reqs + 1]
end

function done(summary, latency, requests)
   local repeats = 0
   for _, t in ipairs(threads) do
      local n, h = t:get("sent"), t:get("have")
      if n > h then repeats = repeats + (n - h) end
   end
   io.write(string.format("requests %d, of them repeats (duplicates) %d, non-2xx %d\n",
      summary.requests, repeats, summary.errors.status))
   for _, p in ipairs({50, 90, 99}) do
      io.write(string.format("p%d %.2f ms\n", p, latency:percentile(p) / 1000))
   end
end
