-- wrk script: a bearer token not sent before on every request, read from the CSV file
-- that `gateway tokens mint` writes (`userId,token`, a header line first, CRLF line ends).
--
--   wrk ... -s bench/tokens.lua URL -- TOKENS.csv CURSOR-FILE THREADS
--
-- CURSOR-FILE holds the number of the first token not sent yet and its byte offset in the
-- file (token 1 when the file is missing); done() moves it past the last token this run
-- sent, so consecutive runs (a warm-up, then the measured runs) send disjoint tokens.
-- THREADS is wrk's -t: thread k (from 0) sends tokens cursor+k, cursor+k+THREADS, ...
-- The file is read as the requests go (nothing is loaded up front, so wrk starts at once).
-- A thread that reaches the end starts over at the cursor; when the cursor is already at
-- the end, the run starts over at token 1. done() prints one line, read by run.sh, with the
-- number of requests that carried a token sent before (by this run or an earlier one):
--
--   Tokens: sent 12345, first 1, last 12345, reused 0

local threads = {}

function setup(thread)
   thread:set("id", #threads)
   table.insert(threads, thread)
end

local function read_cursor(path)
   local handle = io.open(path, "r")
   if handle == nil then
      return 1, 0
   end
   local number, offset = (handle:read("*l") or ""):match("^(%d+) (%d+)$")
   handle:close()
   if number == nil then
      error(path .. ": expected `NUMBER OFFSET`")
   end
   return tonumber(number), tonumber(offset)
end

-- Position the file just before token `number`, at byte `offset` (0: the file's start).
local function rewind(number, offset)
   file:seek("set", offset)
   line_number, line_offset = number - 1, offset
   if offset == 0 then
      local header = file:read("*l")
      if header ~= nil and header:find("^userId,") then
         line_offset = #header + 1
      else
         file:seek("set", 0)
      end
   end
end

-- The next line of the file: its token, or nil at the end.
local function next_token()
   local line = file:read("*l")
   if line == nil then
      return nil
   end
   line_number = line_number + 1
   line_offset = line_offset + #line + 1
   local token = line:match("^[^,]*,([^\r]+)")
   if token == nil then
      error(path .. ": no token on the line of token " .. line_number)
   end
   return token
end

function init(args)
   path, cursor_path, stride = args[1], args[2], tonumber(args[3] or "")
   if path == nil or cursor_path == nil or stride == nil or stride < 1 then
      error("usage: wrk ... -s tokens.lua URL -- TOKENS.csv CURSOR-FILE THREADS")
   end
   file = assert(io.open(path, "r"))
   start_number, start_offset = read_cursor(cursor_path)
   rewind(start_number, start_offset)
   stale = false  -- every token sent before: the cursor was at the end already
   wrapped = false  -- this thread came to the end and started over
   sent, reused, last, after_last, first_number = 0, 0, 0, 0, nil
   headers = {}
end

function request()
   local token
   repeat
      token = next_token()
      if token == nil then
         if line_number < start_number then
            stale = true  -- nothing after the cursor: start over at token 1
            start_number, start_offset = 1, 0
         end
         if wrapped and sent == 0 then
            error(path .. ": no token for thread " .. id)
         end
         wrapped = true
         rewind(start_number, start_offset)
      end
   until token ~= nil and (line_number - start_number) % stride == id
   sent = sent + 1
   if stale or wrapped then
      reused = reused + 1
   end
   if line_number > last then
      last, after_last = line_number, line_offset
   end
   first_number = first_number or line_number
   headers["Authorization"] = "Bearer " .. token
   return wrk.format(nil, nil, headers)
end

function done(summary, latency, requests)
   local sent_all, reused_all, first, last_all, offset = 0, 0, nil, 0, 0
   for _, thread in ipairs(threads) do
      sent_all = sent_all + thread:get("sent")
      reused_all = reused_all + thread:get("reused")
      local number = thread:get("first_number")
      if number ~= nil and (first == nil or number < first) then
         first = number
      end
      if thread:get("last") > last_all then
         last_all, offset = thread:get("last"), thread:get("after_last")
      end
   end
   local handle = assert(io.open(threads[1]:get("cursor_path"), "w"))
   handle:write(string.format("%d %d\n", last_all + 1, offset))
   handle:close()
   io.write(string.format("Tokens: sent %d, first %d, last %d, reused %d\n",
                          sent_all, first or 0, last_all, reused_all))
end
