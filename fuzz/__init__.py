"""The soak test, run from the repository root as ``python -m fuzz.soak`` (``make fuzz``)."""
