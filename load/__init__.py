"""Load test of the gate (``make load``): the SAM handler against moto server and Knot behind a faulty DNS proxy."""
