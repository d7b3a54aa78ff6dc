#!/usr/bin/env bash
# Print the path of a working Python 3.13 interpreter, or explain what to install.
# pyenv's bare `python3.13` shim fails unless that version is selected, so each candidate is run.
set -u
works() { "$1" -c 'import sys; raise SystemExit(sys.version_info[:2] != (3, 13))' >/dev/null 2>&1; }
candidates=("${PYTHON313:-}" python3.13 /usr/bin/python3.13 /usr/local/bin/python3.13)
if command -v pyenv >/dev/null 2>&1; then
  root="$(pyenv root 2>/dev/null)"
  for d in "$root"/versions/3.13*/bin/python3.13; do candidates+=("$d"); done
fi
for d in "$HOME"/.pyenv/versions/3.13*/bin/python3.13; do candidates+=("$d"); done
for c in "${candidates[@]}"; do
  [ -n "$c" ] || continue
  path="$(command -v "$c" 2>/dev/null || true)"
  if [ -n "$path" ] && works "$path"; then
    "$path" -c 'import sys; print(sys.executable)'
    exit 0
  fi
done
echo "ipv6gate needs Python 3.13 (the Lambda runtime). Install it, e.g. 'pyenv install 3.13' or" >&2
echo "'apt-get install python3.13' (Debian 13), or set PYTHON313=/path/to/python3.13." >&2
exit 1
