-- relaygate: marks client addresses that send junk, so Envoy's local rate limit throttles them
-- before the policy service spends any work on their calls (relaygate/contract/preauth.py explains).
-- The policy service tags each reply it decided before authenticating a key with
-- x-relaygate-preauth (removed here; the client never sees it). An address with more than
-- STRIKES such replies within one second is suspect for PENALTY seconds, renewed by each
-- further one; a suspect address's calls carry x-relaygate-suspect, which the local_ratelimit
-- filter after this one turns into a per-address token bucket. Lua state is per Envoy worker:
-- counts and penalties are per worker. At most MAX_ADDRS addresses are tracked; past that
-- the tables start over (a flood from that many addresses resets the penalties it earned).
-- STRIKES, PENALTY and MAX_ADDRS are set by relaygate/envoy/config.py.
local time = os.time
local strikes, until_, tracked = {}, {}, 0

local function client(handle)
  local a = handle:streamInfo():downstreamRemoteAddress() or ""
  return (string.gsub(a, ":%d+$", ""))
end

function envoy_on_request(handle)
  local h = handle:headers()
  h:remove("x-relaygate-suspect")   -- never taken from a client
  local ip = client(handle)
  local t = until_[ip]
  if t ~= nil then
    if t >= time() then
      h:add("x-relaygate-suspect", "1")
    else
      until_[ip] = nil
    end
  end
end

function envoy_on_response(handle)
  local h = handle:headers()
  if h:get("x-relaygate-preauth") == nil then
    return
  end
  h:remove("x-relaygate-preauth")
  local ip = client(handle)
  local now = time()
  local s = strikes[ip]
  if s == nil then
    tracked = tracked + 1
    if tracked > MAX_ADDRS then
      strikes, until_, tracked = {}, {}, 1
    end
    s = {now, 0}
    strikes[ip] = s
  elseif s[1] ~= now then
    s[1], s[2] = now, 0
  end
  s[2] = s[2] + 1
  if s[2] > STRIKES or until_[ip] ~= nil then
    until_[ip] = now + PENALTY
  end
end
