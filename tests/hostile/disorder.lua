-- Repeated and out-of-order commands. libmilter checks the order itself and gives no reply to a
-- command its state table does not allow there (a second connect, a second end of headers): the
-- client then times out, and the script drops that connection abruptly.
local H = dofile("lib.lua")
mt.set_timeout(2)

-- RCPT without MAIL FROM: judged all the same (no PTR: 450 4.7.25).
local conn = H.open("unknown.example", H.NO_PTR_IP)
H.ok(mt.rcptto(conn, "bob@tenant.test"), "rcpt")
H.expect(conn, SMFIR_REPLYCODE, "RCPT without MAIL FROM")
H.ok(mt.disconnect(conn, true), "disconnect")

-- HELO twice, MAIL FROM twice (the second counts), end of message without headers or body.
conn = H.open("mail.good.test", H.GOOD_IP)
H.ok(mt.helo(conn, "first.example"), "helo")
H.ok(mt.helo(conn, "mail.good.test"), "helo again")
H.expect(conn, SMFIR_CONTINUE, "HELO again")
H.ok(mt.mailfrom(conn, "nobody@nospf.test"), "mail from")
H.envelope(conn, "alice@good.test", "bob@tenant.test")
H.accepted_with(conn, "smtp.mailfrom=alice@good.test", "MAIL FROM twice, no headers or body")
H.ok(mt.disconnect(conn, true), "disconnect")

-- End of message with no transaction at all: nothing to judge, accepted.
conn = H.open("mail.other.test", H.OTHER_IP)
if H.eom(conn) ~= nil then H.fail("bare end of message: expected accepted") end
H.ok(mt.disconnect(conn, true), "disconnect")

-- A second connect event on one connection: dropped by libmilter (no reply).
conn = H.open("mail.good.test", H.GOOD_IP)
if mt.conninfo(conn, "unknown.example", H.NO_PTR_IP) == nil then
  H.fail("second connect event: expected no reply")
end
H.ok(mt.disconnect(conn, false), "abrupt disconnect")

-- End of headers twice: the second is dropped (no reply).
conn = H.open("mail.good.test", H.GOOD_IP)
H.envelope(conn, "alice@good.test", "bob@tenant.test")
H.ok(mt.eoh(conn), "eoh")
if mt.eoh(conn) == nil then H.fail("second end of headers: expected no reply") end
H.ok(mt.disconnect(conn, false), "abrupt disconnect")

mt.set_timeout(10)
H.judged_normally()
