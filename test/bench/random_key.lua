-- wrk: GET /integration-credentials/provider/crmN with a random org's API key on
-- every request. The keys (one a line) are read from the file named by the
-- environment variable BENCH_KEYS; N is 1 to 3. The requests are formatted once
-- per thread, so wrk spends its time sending them, not building them.
local requests = {}

function init(args)
  local f = assert(io.open(os.getenv("BENCH_KEYS"), "r"))
  for key in f:lines() do
    for p = 1, 3 do
      requests[#requests + 1] = wrk.format("GET", "/integration-credentials/provider/crm" .. p,
                                           {["X-API-Key"] = key})
    end
  end
  f:close()
  math.randomseed(os.time() + tonumber(tostring(requests):match("0x(%x+)") or "0", 16) % 100000)
end

function request()
  return requests[math.random(#requests)]
end
