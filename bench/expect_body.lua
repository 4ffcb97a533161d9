-- wrk script: checks every answer instead of only counting it. Each response whose status
-- is not 200 or whose body is not the expected text (the first script argument) counts as
-- unexpected; done() prints one line:
--
--   wrk ... -s bench/expect_body.lua URL -- EXPECTED
--   Body: 0 of 1234 unexpected
--
-- Used by bench/lib.sh (check_wrk_client_cert) before measuring, not in measured runs:
-- reading bodies in Lua slows wrk down.

local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

function init(args)
   expected = args[1]
   seen = 0
   unexpected = 0
end

function response(status, headers, body)
   seen = seen + 1
   if status ~= 200 or body ~= expected then
      unexpected = unexpected + 1
   end
end

function done(summary, latency, requests)
   local total, wrong = 0, 0
   for _, thread in ipairs(threads) do
      total = total + thread:get("seen")
      wrong = wrong + thread:get("unexpected")
   end
   io.write(string.format("Body: %d of %d unexpected\n", wrong, total))
end
