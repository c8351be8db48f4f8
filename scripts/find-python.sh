#!/usr/bin/env bash
# Print the path of a Python interpreter of the requested version family.
#   find-python.sh 3.10     -> exactly 3.10 (Rasa 3.6 needs it)
#   find-python.sh 3.11+    -> 3.11 or newer (the project runtime)
set -u
want="$1"
candidates=()
if [ "$want" = "3.10" ]; then
  candidates+=(python3.10)
  root=$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")
  for p in "$root"/versions/3.10*/bin/python3.10 /usr/bin/python3.10 /usr/local/bin/python3.10; do candidates+=("$p"); done
  check='import sys; sys.exit(0 if sys.version_info[:2] == (3, 10) else 1)'
else
  candidates+=(python3.11 python3.12 python3.13 python3)
  check='import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'
fi
for c in "${candidates[@]}"; do
  path=$(command -v "$c" 2>/dev/null) || continue
  if "$path" -c "$check" >/dev/null 2>&1; then
    "$path" -c 'import sys; print(sys.executable)'
    exit 0
  fi
done
if [ "$want" = "3.10" ]; then
  echo "Python 3.10 was not found: Rasa 3.6 needs it; install it (for example 'apt-get install python3.10 python3.10-venv' or 'pyenv install 3.10') and run make again." >&2
else
  echo "Python 3.11 or newer was not found: install it (for example 'apt-get install python3.11 python3.11-venv') and run make again." >&2
fi
exit 1
