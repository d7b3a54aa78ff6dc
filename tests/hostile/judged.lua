-- Fresh sessions judged as usual, nothing else (a server just started).
local H = dofile("lib.lua")
H.judged_normally()
