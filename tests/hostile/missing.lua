-- Missing connect information and macros: no address family, no connect event before MAIL FROM, no
-- HELO, no macros at all (so no queue id: the decision gets an smtp-... id of its own).
local H = dofile("lib.lua")

-- "unspec": the MTA knows no address; outside the IPv6 rule, accepted.
local conn = H.open("localhost", "unspec")
H.envelope(conn, "alice@good.test", "bob@tenant.test")
H.message(conn, H.plain)
if H.eom(conn) ~= nil then H.fail("unspec client: expected accepted") end
H.ok(mt.disconnect(conn, true), "disconnect")

-- MAIL FROM straight after the negotiation: miltertest sends a connect event of its own first
-- (localhost, 12.34.56.78), an IPv4 client.
conn = H.open()
H.envelope(conn, "alice@good.test", "erin@tenant.test")
H.message(conn, H.plain)
if H.eom(conn) ~= nil then H.fail("MAIL FROM first: expected accepted") end
H.ok(mt.disconnect(conn, true), "disconnect")

-- No HELO, no macros: the PTR rule still applies at RCPT.
conn = H.open("unknown.example", H.NO_PTR_IP)
H.ok(mt.mailfrom(conn, "alice@good.test"), "mail from")
H.ok(mt.rcptto(conn, "bob@tenant.test"), "rcpt")
H.expect(conn, SMFIR_REPLYCODE, "no HELO, no PTR")
H.ok(mt.disconnect(conn, true), "disconnect")

H.judged_normally()
