"""Tools run from the repository root as modules: ``python -m scripts.demo`` (``make demo``), ...."""
