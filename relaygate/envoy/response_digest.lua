-- relaygate: SHA-256 of each response body, computed as the body streams
-- through Envoy (chunks are not buffered, so SSE still arrives event by event).
-- The digest goes into the relaygate.usage dynamic metadata, which the gRPC
-- access log carries to the settler: it is the receipt's response subject.
-- Pure LuaJIT bit operations; checked against Python's hashlib in the tests.
-- A library: relaygate/envoy/config.py puts it in the one response-side Lua filter, which calls
-- response_digest(handle) after the header allow-list (one Lua filter instead of several: each
-- costs Envoy ~0.06-0.1 ms of CPU per call, whatever it does).
local bit = require("bit")
local band, bor, bxor, bnot = bit.band, bit.bor, bit.bxor, bit.bnot
local rshift, lshift, ror, tobit, tohex = bit.rshift, bit.lshift, bit.ror, bit.tobit, bit.tohex
local byte, sub, char, rep = string.byte, string.sub, string.char, string.rep
local floor = math.floor
local K = {
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
}
for i = 1, 64 do K[i] = tobit(K[i]) end
local W = {}
local function block(H, s, off)
  for i = 0, 15 do
    local a, b, c, d = byte(s, off + i * 4, off + i * 4 + 3)
    W[i] = bor(lshift(a, 24), lshift(b, 16), lshift(c, 8), d)
  end
  for i = 16, 63 do
    local w15, w2 = W[i - 15], W[i - 2]
    W[i] = tobit(W[i - 16] + bxor(ror(w15, 7), ror(w15, 18), rshift(w15, 3)) + W[i - 7]
                 + bxor(ror(w2, 17), ror(w2, 19), rshift(w2, 10)))
  end
  local a, b, c, d, e, f, g, h = H[1], H[2], H[3], H[4], H[5], H[6], H[7], H[8]
  for i = 0, 63 do
    local t1 = tobit(h + bxor(ror(e, 6), ror(e, 11), ror(e, 25)) + bxor(band(e, f), band(bnot(e), g)) + K[i + 1] + W[i])
    local t2 = tobit(bxor(ror(a, 2), ror(a, 13), ror(a, 22)) + bxor(band(a, b), band(a, c), band(b, c)))
    h, g, f, e, d, c, b, a = g, f, e, tobit(d + t1), c, b, a, tobit(t1 + t2)
  end
  H[1], H[2], H[3], H[4] = tobit(H[1] + a), tobit(H[2] + b), tobit(H[3] + c), tobit(H[4] + d)
  H[5], H[6], H[7], H[8] = tobit(H[5] + e), tobit(H[6] + f), tobit(H[7] + g), tobit(H[8] + h)
end
local Sha = {}
Sha.__index = Sha
function Sha.new()
  return setmetatable({H = {tobit(0x6a09e667), tobit(0xbb67ae85), tobit(0x3c6ef372), tobit(0xa54ff53a),
                            tobit(0x510e527f), tobit(0x9b05688c), tobit(0x1f83d9ab), tobit(0x5be0cd19)},
                       buf = "", n = 0}, Sha)
end
function Sha:update(s)
  self.n = self.n + #s
  if #self.buf > 0 then s = self.buf .. s end
  local full = #s - #s % 64
  for off = 1, full, 64 do block(self.H, s, off) end
  self.buf = sub(s, full + 1)
end
function Sha:hex()
  local bits = self.n * 8
  local pad = 64 - (self.n + 9) % 64
  if pad == 64 then pad = 0 end
  local hi, lo = floor(bits / 4294967296), bits % 4294967296
  local tail = self.buf .. "\128" .. rep("\0", pad)
      .. char(band(rshift(hi, 24), 255), band(rshift(hi, 16), 255), band(rshift(hi, 8), 255), band(hi, 255),
              band(rshift(lo, 24), 255), band(rshift(lo, 16), 255), band(rshift(lo, 8), 255), band(lo, 255))
  for off = 1, #tail, 64 do block(self.H, tail, off) end
  local out = {}
  for i = 1, 8 do out[i] = tohex(self.H[i], 8) end
  return table.concat(out)
end
-- AWS event streams (Bedrock's ConverseStream and InvokeModelWithResponseStream answer
-- application/vnd.amazon.eventstream: binary frames, a 12-byte prelude with the total and the
-- headers' length, typed headers, the payload, a CRC32). Usage is read out of the frames as they
-- pass, a frame at a time (a frame may straddle chunks; only the unfinished one is held):
-- ConverseStream's "metadata" event carries usage.{inputTokens,outputTokens}; the last "chunk"
-- event of InvokeModelWithResponseStream carries {"bytes": base64(JSON)} whose JSON names
-- amazon-bedrock-invocationMetrics {inputTokenCount, outputTokenCount}.
local find, match = string.find, string.match
local B64 = {}
do
  local a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
  for i = 1, 64 do B64[byte(a, i)] = i - 1 end
end
local function b64decode(s)
  local out, n, acc, bits = {}, 0, 0, 0
  for i = 1, #s do
    local v = B64[byte(s, i)]
    if v then
      acc, bits = acc * 64 + v, bits + 6
      if bits >= 8 then
        bits = bits - 8
        local p = 2 ^ bits
        n = n + 1
        out[n] = char(floor(acc / p))
        acc = acc % p
      end
    end
  end
  return table.concat(out)
end
local function u32(s, i)
  local a, b, c, d = byte(s, i, i + 3)
  return ((a * 256 + b) * 256 + c) * 256 + d
end
-- header value sizes by type (AWS event-stream): 0/1 bool, 2 byte, 3 short, 4 int, 5 long, 8 timestamp, 9 uuid
local FIXED = {[0] = 0, [1] = 0, [2] = 1, [3] = 2, [4] = 4, [5] = 8, [8] = 8, [9] = 16}
local ES_USAGE = {
  metadata = {{"inputTokens", "input_tokens"}, {"outputTokens", "output_tokens"},
              {"cacheReadInputTokens", "cache_read_input_tokens"},
              {"cacheWriteInputTokens", "cache_creation_input_tokens"}},
  chunk = {{"inputTokenCount", "input_tokens"}, {"outputTokenCount", "output_tokens"},
           {"cacheReadInputTokenCount", "cache_read_input_tokens"},
           {"cacheWriteInputTokenCount", "cache_creation_input_tokens"}},
}
local function event_usage(frame, handle)
  local total, hend = #frame, 12 + u32(frame, 5)
  local p, etype = 13, nil
  while p <= hend do
    local nl = byte(frame, p)
    local name = sub(frame, p + 1, p + nl)
    local t = byte(frame, p + 1 + nl)
    p = p + 2 + nl
    if t == 6 or t == 7 then
      local vl = byte(frame, p) * 256 + byte(frame, p + 1)
      if name == ":event-type" then etype = sub(frame, p + 2, p + 1 + vl) end
      p = p + 2 + vl
    elseif FIXED[t] then
      p = p + FIXED[t]
    else
      return
    end
  end
  local fields = ES_USAGE[etype or ""]
  if not fields then return end
  local json = sub(frame, hend + 1, total - 4)
  if etype == "chunk" then
    if not find(json, "\"bytes\"", 1, true) then return end
    json = b64decode(match(json, '"bytes"%s*:%s*"([^"]*)"') or "")
    if not find(json, "amazon-bedrock-invocationMetrics", 1, true) then return end
  end
  for _, f in ipairs(fields) do
    local v = match(json, '"' .. f[1] .. '"%s*:%s*(%d+)')
    if v then handle:streamInfo():dynamicMetadata():set("relaygate.usage", f[2], tonumber(v)) end
  end
end
local function response_digest(handle)
  local sha = Sha.new()
  local ctype = handle:headers():get("content-type") or ""
  local es = find(ctype, "application/vnd.amazon.eventstream", 1, true) == 1
  local buf = ""  -- (Envoy's handles are valid only until the next yield: fetched again each time)
  for chunk in handle:bodyChunks() do
    local bytes = chunk:getBytes(0, chunk:length())
    sha:update(bytes)
    if es then
      buf = buf .. bytes
      while #buf >= 12 do
        local total = u32(buf, 1)
        if total < 16 or total > 16777216 or u32(buf, 5) > total - 16 then es, buf = false, ""; break end
        if #buf < total then break end
        event_usage(sub(buf, 1, total), handle)
        buf = sub(buf, total + 1)
      end
    end
  end
  handle:streamInfo():dynamicMetadata():set("relaygate.usage", "response_digest", "sha256:" .. sha:hex())
end
