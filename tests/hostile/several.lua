-- Several messages on one connection: each judged on its own, a refused recipient in between.
local H = dofile("lib.lua")

local conn = H.open("mail.good.test", H.GOOD_IP)
H.ok(mt.helo(conn, "mail.good.test"), "helo")
H.envelope(conn, "alice@good.test", "bob@tenant.test")
H.message(conn, H.plain)
H.accepted_with(conn, "spf=pass", "first message")
H.ok(mt.mailfrom(conn, "alice@good.test"), "mail from")
H.ok(mt.rcptto(conn, "carol@optout.test"), "rcpt")
H.expect(conn, SMFIR_REPLYCODE, "second message: not opted in, 550 5.2.1 at RCPT")
H.ok(mt.abort(conn), "RSET") -- what the MTA sends when no recipient was accepted
H.envelope(conn, "alice@good.test", "dave@tenant.test")
H.message(conn, H.plain)
H.accepted_with(conn, "spf=pass", "third message")
H.ok(mt.disconnect(conn, true), "disconnect")

-- Not in SPF: plain refused, signed accepted, plain refused again (nothing carried over).
conn = H.open("mail.other.test", H.OTHER_IP)
H.ok(mt.helo(conn, "mail.other.test"), "helo")
for i, msg in ipairs({H.plain, H.signed, H.plain}) do
  H.envelope(conn, "alice@good.test", "bob@tenant.test")
  H.message(conn, msg, i)
  if msg == H.signed then
    H.accepted_with(conn, "dkim=pass", "signed message " .. i)
  else
    H.refused(conn, "plain message " .. i)
  end
end
H.ok(mt.disconnect(conn, true), "disconnect")

H.judged_normally()
