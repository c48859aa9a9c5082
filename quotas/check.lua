-- Check every limit of one request and, only if all pass, consume from all: atomically.
--
-- KEYS[1..n]  one key per policy (quota keys get ":<day or month id>" appended here)
-- KEYS[n+1]   the usage hash (pending per-consumer, per-route, per-day counts)
-- ARGV[1]     the time in microseconds since the epoch, or "" to use Redis TIME (one clock
--             for every gateway node, so node clock skew never changes a verdict)
-- ARGV[2]     "1" to consume, "0" for a dry run (nothing is written)
-- ARGV[3]     the usage field suffix, or "" to count nothing
-- ARGV[4]     the usage hash's TTL in seconds
-- ARGV[5]     n, the number of policies; then 4 values per policy:
--             kind (tb | sw | day | month), limit, requests, period in microseconds
--
-- Returns {allowed, now_us, then per policy: remaining, reset_us, retry_us (-1: not refused)}.

local floor = math.floor

local function int(x)
  -- Lua 5.1 prints large numbers as 1.8e+15; Redis commands need exact integers.
  return string.format('%d', x)
end

local function ceil_div(a, b)
  return floor((a + b - 1) / b)
end

local now
if ARGV[1] ~= '' then
  now = tonumber(ARGV[1])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local consume = ARGV[2] == '1'
local usage_field = ARGV[3]
local usage_ttl = tonumber(ARGV[4])
local n = tonumber(ARGV[5])

local DAY_US = 86400000000

-- Howard Hinnant's civil calendar algorithms (proleptic Gregorian, UTC).
local function civil_from_days(days)
  local z = days + 719468
  local era = floor(z / 146097)
  local doe = z - era * 146097
  local yoe = floor((doe - floor(doe / 1460) + floor(doe / 36524) - floor(doe / 146096)) / 365)
  local y = yoe + era * 400
  local doy = doe - (365 * yoe + floor(yoe / 4) - floor(yoe / 100))
  local mp = floor((5 * doy + 2) / 153)
  local m = mp < 10 and mp + 3 or mp - 9
  if m <= 2 then y = y + 1 end
  return y, m
end

local function days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = floor(y / 400)
  local yoe = y - era * 400
  local mp = m > 2 and m - 3 or m + 9
  local doy = floor((153 * mp + 2) / 5) + d - 1
  local doe = yoe * 365 + floor(yoe / 4) - floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end

-- The id of the UTC day or month containing `now`, and when it ends (microseconds).
local function period(kind)
  local day = floor(now / DAY_US)
  if kind == 'day' then
    return day, (day + 1) * DAY_US
  end
  local y, m = civil_from_days(day)
  local ny, nm = y, m + 1
  if nm == 13 then ny, nm = y + 1, 1 end
  return y * 12 + m - 1, days_from_civil(ny, nm, 1) * DAY_US
end

-- Phase 1: read every policy's state; nothing is written.
local states = {}
local allowed = true
for i = 1, n do
  local base = 5 + (i - 1) * 4
  local s = {
    kind = ARGV[base + 1],
    limit = tonumber(ARGV[base + 2]),
    requests = tonumber(ARGV[base + 3]),
    period = tonumber(ARGV[base + 4]),
    key = KEYS[i],
  }
  if s.kind == 'tb' then
    -- Token bucket in exact integers: one token = `period` units, refilled at `requests`
    -- units per microsecond, capacity `limit` tokens.
    s.unit = s.period
    s.cap = s.limit * s.unit
    local v = redis.call('HMGET', s.key, 't', 'ts')
    s.tokens = s.cap
    if v[1] then
      local elapsed = now - tonumber(v[2])
      if elapsed < 0 then elapsed = 0 end
      local fill = ceil_div(s.cap, s.requests)
      if elapsed > fill then elapsed = fill end
      s.tokens = math.min(s.cap, tonumber(v[1]) + elapsed * s.requests)
    end
    s.ok = s.tokens >= s.unit
  elseif s.kind == 'sw' then
    -- Sliding log: at most `limit` entries in any window of `period`.
    local since = '(' .. int(now - s.period)
    s.count = redis.call('ZCOUNT', s.key, since, '+inf')
    if s.count > 0 then
      s.oldest = tonumber(redis.call('ZRANGEBYSCORE', s.key, since, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)[2])
      s.newest = tonumber(redis.call('ZREVRANGE', s.key, 0, 0, 'WITHSCORES')[2])
    end
    s.ok = s.count < s.limit
  else
    local pid, ends = period(s.kind)
    s.qkey = s.key .. ':' .. int(pid)
    s.ends = ends
    s.used = tonumber(redis.call('GET', s.qkey) or '0')
    s.ok = s.used < s.limit
  end
  if not s.ok then allowed = false end
  states[i] = s
end

local out = {allowed and 1 or 0, now}

-- Phase 2: consume from every policy, only when all of them passed.
if allowed and consume then
  for i = 1, n do
    local s = states[i]
    local remaining, reset
    if s.kind == 'tb' then
      local tokens = s.tokens - s.unit
      redis.call('HSET', s.key, 't', int(tokens), 'ts', int(now))
      local to_full = ceil_div(s.cap - tokens, s.requests)
      redis.call('PEXPIRE', s.key, int(ceil_div(to_full, 1000) + 1))
      remaining = floor(tokens / s.unit)
      reset = remaining == 0 and ceil_div(s.unit - tokens, s.requests) or to_full
    elseif s.kind == 'sw' then
      redis.call('ZREMRANGEBYSCORE', s.key, '-inf', int(now - s.period))
      redis.call('ZADD', s.key, int(now), int(now) .. ':' .. s.count)
      redis.call('PEXPIRE', s.key, int(ceil_div(s.period, 1000) + 1))
      remaining = s.limit - s.count - 1
      reset = remaining == 0 and ((s.oldest or now) + s.period - now) or s.period
    else
      redis.call('INCR', s.qkey)
      -- An hour past the period's end: late readers (the console) still see the final count.
      redis.call('PEXPIREAT', s.qkey, int(floor(s.ends / 1000) + 3600000))
      remaining = s.limit - s.used - 1
      reset = s.ends - now
    end
    if remaining < 0 then remaining = 0 end
    out[#out + 1] = remaining
    out[#out + 1] = reset
    out[#out + 1] = -1
  end
else
  for i = 1, n do
    local s = states[i]
    local remaining, reset, retry
    if s.kind == 'tb' then
      remaining = floor(s.tokens / s.unit)
      local to_next = ceil_div(s.unit - s.tokens, s.requests)
      reset = remaining == 0 and to_next or ceil_div(s.cap - s.tokens, s.requests)
      retry = to_next
    elseif s.kind == 'sw' then
      remaining = s.limit - s.count
      local to_next = s.count > 0 and (s.oldest + s.period - now) or 0
      reset = remaining <= 0 and to_next or (s.count > 0 and (s.newest + s.period - now) or 0)
      retry = to_next
    else
      remaining = s.limit - s.used
      reset = s.ends - now
      retry = reset
    end
    if remaining < 0 then remaining = 0 end
    out[#out + 1] = remaining
    out[#out + 1] = reset
    out[#out + 1] = s.ok and -1 or retry
  end
end

if consume and usage_field ~= '' then
  local usage_key = KEYS[n + 1]
  local field = int(floor(now / DAY_US)) .. '|' .. (allowed and 'a' or 'r') .. '|' .. usage_field
  redis.call('HINCRBY', usage_key, field, 1)
  redis.call('EXPIRE', usage_key, usage_ttl)
end

return out
