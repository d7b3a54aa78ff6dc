-- Shared by the miltertest scripts in this folder (run by tests/integration/test_milter_hostile.py).
-- miltertest's calls return nil on success and an error text on failure; `ok` turns that into a
-- failure of the script. miltertest exits 1 on a Lua error without printing it: `fail` echoes first.
-- (It cannot check a reply's text at RCPT, and its MT_SMTPREPLY check does not match ours: the code
-- is checked here, the text in the decision log line by the test.)
local H = {}

function H.fail(text)
  mt.echo("FAIL: " .. text)
  error(text)
end

H.socket = "unix:" .. assert(os.getenv("MILTER_SOCKET"), "MILTER_SOCKET not set")
-- The test world's clients (devstack/world.py)
H.GOOD_IP = "2001:db8:1::25"   -- PTR forward-confirmed, in good.test's SPF
H.NO_PTR_IP = "2001:db8:2::25" -- no PTR: 450 4.7.25 at RCPT for an enforcing tenant
H.OTHER_IP = "2001:db8:6::25"  -- PTR fine, in no SPF record: 450 4.7.26 unless DKIM passes
H.V4_IP = "192.0.2.25"

-- The signed and the plain message, written by the test as Lua tables {headers = {{name, value}, ...}, body = "..."}
H.signed = dofile(assert(os.getenv("MT_SIGNED"), "MT_SIGNED not set"))
H.plain = dofile(assert(os.getenv("MT_PLAIN"), "MT_PLAIN not set"))

function H.ok(result, what)
  if result ~= nil then
    H.fail(what .. ": " .. tostring(result))
  end
end

function H.expect(conn, want, what)
  local got = mt.getreply(conn)
  if got ~= want then
    H.fail(string.format("%s: milter replied %s, expected %s", what, tostring(got), tostring(want)))
  end
end

function H.open(host, ip)
  local conn = mt.connect(H.socket, 20, 0.25)
  if conn == nil then
    H.fail("cannot connect to " .. H.socket)
  end
  if ip ~= nil then
    H.ok(mt.conninfo(conn, host, ip), "conninfo")
    H.expect(conn, SMFIR_CONTINUE, "connect")
  end
  return conn
end

-- Headers, end of headers, the body in `pieces` chunks; no end of message.
function H.message(conn, msg, pieces)
  for _, h in ipairs(msg.headers) do
    H.ok(mt.header(conn, h[1], h[2]), "header " .. h[1])
  end
  H.ok(mt.eoh(conn), "eoh")
  pieces = pieces or 1
  local size = math.ceil(#msg.body / pieces)
  for i = 1, #msg.body, size do
    H.ok(mt.bodystring(conn, msg.body:sub(i, i + size - 1)), "body")
  end
end

function H.envelope(conn, sender, ...)
  H.ok(mt.mailfrom(conn, sender), "mail from")
  H.expect(conn, SMFIR_CONTINUE, "mail from")
  for _, rcpt in ipairs({...}) do
    H.ok(mt.rcptto(conn, rcpt), "rcpt " .. rcpt)
    H.expect(conn, SMFIR_CONTINUE, "rcpt " .. rcpt)
  end
end

-- End of message: the reply code, or nil for an accepted message (which must carry our header).
function H.eom(conn)
  H.ok(mt.eom(conn), "eom")
  local reply = mt.getreply(conn)
  if reply == SMFIR_REPLYCODE then
    return reply
  end
  if reply ~= SMFIR_CONTINUE and reply ~= SMFIR_ACCEPT then
    H.fail("eom: unexpected reply " .. tostring(reply))
  end
  return nil
end

-- A reply with its own code (our 450 4.7.26) at the end of the message, and no header added.
function H.refused(conn, what)
  if H.eom(conn) ~= SMFIR_REPLYCODE then
    H.fail(what .. ": expected a reply code at the end of the message")
  end
  if mt.eom_check(conn, MT_HDRINSERT) or mt.eom_check(conn, MT_HDRADD) then
    H.fail(what .. ": a refused message got a header")
  end
end

function H.accepted_with(conn, result, what)
  if H.eom(conn) ~= nil then
    H.fail(what .. ": expected the message accepted")
  end
  local header = mt.getheader(conn, "Authentication-Results", 0)
  if header == nil or not string.find(header, result, 1, true) then
    H.fail(string.format("%s: Authentication-Results %q lacks %q", what, tostring(header), result))
  end
end

-- What every script ends with: fresh connections are judged as usual (the milter survived the abuse).
function H.judged_normally()
  local conn = H.open("mail.good.test", H.GOOD_IP)
  H.ok(mt.helo(conn, "mail.good.test"), "helo")
  H.envelope(conn, "alice@good.test", "bob@tenant.test")
  H.message(conn, H.plain)
  H.accepted_with(conn, "spf=pass", "normal session, SPF pass")
  H.ok(mt.disconnect(conn, true), "disconnect")

  conn = H.open("mail.other.test", H.OTHER_IP)
  H.ok(mt.helo(conn, "mail.other.test"), "helo")
  H.envelope(conn, "alice@good.test", "bob@tenant.test")
  H.message(conn, H.plain)
  H.refused(conn, "normal session, neither SPF nor DKIM")
  H.ok(mt.disconnect(conn, true), "disconnect")

  conn = H.open("unknown.example", H.NO_PTR_IP)
  H.ok(mt.helo(conn, "unknown.example"), "helo")
  H.ok(mt.mailfrom(conn, "alice@good.test"), "mail from")
  H.ok(mt.rcptto(conn, "bob@tenant.test"), "rcpt")
  H.expect(conn, SMFIR_REPLYCODE, "normal session, no PTR: 450 4.7.25 at RCPT")
  H.ok(mt.disconnect(conn, true), "disconnect")
end

return H
