-- Clients that vanish (the connection closed without QUIT) at every stage, one of them while the DKIM
-- check is reading its body.
local H = dofile("lib.lua")

local conn = H.open("mail.good.test", H.GOOD_IP)
H.ok(mt.disconnect(conn, false), "gone after connect")

conn = H.open("unknown.example", H.NO_PTR_IP)
H.ok(mt.helo(conn, "unknown.example"), "helo")
H.ok(mt.mailfrom(conn, "alice@good.test"), "mail from")
H.ok(mt.disconnect(conn, false), "gone after MAIL FROM")

conn = H.open("mail.good.test", H.GOOD_IP)
H.envelope(conn, "alice@good.test", "bob@tenant.test")
H.ok(mt.header(conn, "From", " alice@good.test"), "header")
H.ok(mt.disconnect(conn, false), "gone in the headers")

for i = 1, 5 do
  conn = H.open("mail.other.test", H.OTHER_IP)
  H.envelope(conn, "alice@good.test", "bob@tenant.test")
  H.message(conn, {headers = H.signed.headers, body = H.signed.body:sub(1, 100 * i)}, i)
  H.ok(mt.disconnect(conn, false), "gone in a body being hashed")
end

H.judged_normally()
