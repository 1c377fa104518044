#!/usr/bin/env bash
# Copy the bundled example repo into a fresh git repo in a temp folder and run fixbot on it,
# so a newcomer sees a real run, its branch and its report without touching anything of theirs.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
fixbot="${FIXBOT:-$here/../.venv/bin/fixbot}"
work="$(mktemp -d "${TMPDIR:-/tmp}/fixbot-demo.XXXXXX")"
cp -R "$here/sample-repo/." "$work/"
cd "$work"
git init -q -b main
git add -A
git -c user.name=demo -c user.email=demo@example.com commit -q -m "sample repo"
# The sample's tests run under its own interpreter, as a real repo's would.
python3 -m venv .venv
.venv/bin/pip install -q pytest
echo "fixbot demo repo: $work"
"$fixbot" run "$work" "$@"
echo
echo "See the branch:  git -C $work log --oneline fixbot/$(date -u +%Y-%m-%d)"
