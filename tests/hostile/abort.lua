-- Abort mid-transaction: after RCPT, in the headers, and in a body a DKIM check is reading; then the
-- same connection carries another message, judged as usual.
local H = dofile("lib.lua")

local conn = H.open("mail.good.test", H.GOOD_IP)
H.ok(mt.helo(conn, "mail.good.test"), "helo")

H.envelope(conn, "alice@good.test", "bob@tenant.test")
H.ok(mt.abort(conn), "abort after RCPT")

H.envelope(conn, "alice@good.test", "bob@tenant.test")
H.ok(mt.header(conn, "From", " alice@good.test"), "header")
H.ok(mt.abort(conn), "abort in the headers")

H.envelope(conn, "alice@good.test", "bob@tenant.test")
H.message(conn, H.plain)
H.accepted_with(conn, "spf=pass", "message after two aborts")
H.ok(mt.disconnect(conn, true), "disconnect")

-- Not in SPF: the verdict waits on DKIM, whose check reads the body as it streams. Abort half way.
conn = H.open("mail.other.test", H.OTHER_IP)
H.ok(mt.helo(conn, "mail.other.test"), "helo")
H.envelope(conn, "alice@good.test", "bob@tenant.test")
local half = {headers = H.signed.headers, body = H.signed.body:sub(1, #H.signed.body // 2)}
H.message(conn, half, 2)
H.ok(mt.abort(conn), "abort in a body being hashed")

H.envelope(conn, "alice@good.test", "bob@tenant.test")
H.message(conn, H.signed, 3)
H.accepted_with(conn, "dkim=pass", "signed message after the abort")
H.envelope(conn, "alice@good.test", "bob@tenant.test")
H.message(conn, H.plain)
H.refused(conn, "plain message after the abort")
H.ok(mt.disconnect(conn, true), "disconnect")

H.judged_normally()
