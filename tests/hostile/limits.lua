-- Past the limits (the test starts this milter with MILTER_MAX_HEADER_BYTES=1024,
-- MESSAGE_MAX_BYTES=1024, MILTER_MAX_RECIPIENTS=3): DKIM is permerror beyond the header or message
-- size, so a client not in SPF gets 450 4.7.26; the fourth recipient gets 452 4.5.3.
local H = dofile("lib.lua")
local small = dofile(assert(os.getenv("MT_SMALL"), "MT_SMALL not set")) -- signed, under both limits

local conn = H.open("mail.other.test", H.OTHER_IP)
H.envelope(conn, "alice@good.test", "bob@tenant.test")
H.message(conn, small)
H.accepted_with(conn, "dkim=pass", "signed, under the limits")

-- The same message after 12 filler headers of 100 bytes (headers past 1024 bytes).
H.envelope(conn, "alice@good.test", "bob@tenant.test")
local filler = " " .. string.rep("x", 90)
local padded = {headers = {}, body = small.body}
for i = 1, 12 do table.insert(padded.headers, {"X-Filler-" .. i, filler}) end
for _, h in ipairs(small.headers) do table.insert(padded.headers, h) end
H.message(conn, padded)
H.refused(conn, "headers past MILTER_MAX_HEADER_BYTES")

-- A body past MESSAGE_MAX_BYTES.
H.envelope(conn, "alice@good.test", "bob@tenant.test")
H.message(conn, H.signed, 4)
H.refused(conn, "message past MESSAGE_MAX_BYTES")
H.ok(mt.disconnect(conn, true), "disconnect")

conn = H.open("mail.good.test", H.GOOD_IP)
H.envelope(conn, "alice@good.test", "r1@tenant.test", "r2@tenant.test", "r3@tenant.test")
H.ok(mt.rcptto(conn, "r4@tenant.test"), "rcpt")
H.expect(conn, SMFIR_REPLYCODE, "fourth recipient")
H.message(conn, H.plain)
H.accepted_with(conn, "spf=pass", "the three recipients")
H.ok(mt.disconnect(conn, true), "disconnect")

H.judged_normally()
