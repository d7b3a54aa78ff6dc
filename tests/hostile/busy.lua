-- The milter started with MILTER_DKIM_READERS=1 and MILTER_MAX_SESSIONS=4: a signed message whose
-- body is being read holds the one reader, so a second signed message is refused at the end of its
-- headers (451 4.3.2, temporary); a fifth connection in flight is refused at connect (421 4.3.2).
-- Once those end, both kinds are judged as usual.
local H = dofile("lib.lua")

local first = H.open("mail.other.test", H.OTHER_IP)
H.envelope(first, "alice@good.test", "bob@tenant.test")
H.message(first, {headers = H.signed.headers, body = H.signed.body:sub(1, 200)})

local second = H.open("mail.other.test", H.OTHER_IP)
H.envelope(second, "alice@good.test", "bob@tenant.test")
for _, h in ipairs(H.signed.headers) do
  H.ok(mt.header(second, h[1], h[2]), "header")
end
H.ok(mt.eoh(second), "eoh")
H.expect(second, SMFIR_REPLYCODE, "second signed message while the reader is taken")

local third = H.open("mail.good.test", H.GOOD_IP)
local fourth = H.open("mail.good.test", H.GOOD_IP)
local fifth = mt.connect(H.socket, 20, 0.25)
H.ok(mt.conninfo(fifth, "mail.good.test", H.GOOD_IP), "conninfo")
H.expect(fifth, SMFIR_REPLYCODE, "fifth session in flight")
H.ok(mt.disconnect(fifth, true), "disconnect")

H.ok(mt.bodystring(first, H.signed.body:sub(201)), "rest of the body")
H.accepted_with(first, "dkim=pass", "the message holding the reader")
for _, conn in ipairs({first, second, third, fourth}) do
  H.ok(mt.disconnect(conn, true), "disconnect")
end
mt.sleep(1) -- the milter counts a session closed once libmilter has called close()

conn = H.open("mail.other.test", H.OTHER_IP)
H.envelope(conn, "alice@good.test", "bob@tenant.test")
H.message(conn, H.signed, 2)
H.accepted_with(conn, "dkim=pass", "a signed message once the reader is free")
H.ok(mt.disconnect(conn, true), "disconnect")

H.judged_normally()
