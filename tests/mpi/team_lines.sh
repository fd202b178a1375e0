#!/usr/bin/env bash
# Every team's job lines are shown, named by team (the README's promise): a
# sweep of 4 jobs over 2 teams of 1 rank prints one "[k/4] NAME: done, ...
# (T s, team I)" line per job, whichever team ran it, and the jobs' own lines
# of each team carry "[team I]". The teams are read from the report
# (compute.json), so the test holds whichever team claimed which job; it also
# checks that both teams did claim some. With --quiet-jobs only the "[k/4]"
# lines remain.
# Usage: team_lines.sh FINEMASK MPIEXEC SOURCE_DIR.
set -euo pipefail
bin=$1 mpiexec=$2 src=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bash "$src/tests/mpi/mkdata.sh" "$bin" "$work"
cat > "$work/job.ini" <<INI
[run]
model = model
data = glue
[sweep]
tasks = SST-2
modes = full
seeds = 1, 2, 3, 4
[train]
lr = 1e-3
batch_size = 8
max_steps = 24
max_seq_length = 24
[layout]
threads = 1
INI
mpi=("$mpiexec" --oversubscribe --bind-to none)
check() { # check OUT ERR QUIET
  /usr/bin/python3 - "$@" <<'PY'
import json, re, sys
out, err, quiet = sys.argv[1], open(sys.argv[2]).read(), sys.argv[3] == "1"
jobs = json.load(open(f"{out}/report/compute.json"))["jobs"]
team_of = {j["name"]: int(j["team"]) for j in jobs}
assert len(team_of) == 4, team_of
assert set(team_of.values()) == {0, 1}, ("both teams should have run jobs", team_of)
ends = re.findall(r"^finemask: \[\d+/4\] (\S+): done, acc [0-9.]+ \([0-9.]+ s, team (\d)\)$", err, re.M)
assert sorted(ends) == sorted((n, str(t)) for n, t in team_of.items()), (ends, team_of)
for name, t in team_of.items():
    own = re.findall(rf"^finemask: \[team {t}\] SST-2: done in .* {out}/{re.escape(name)}$", err, re.M)
    if quiet:
        assert not own, own
    else:
        assert len(own) == 1, (name, t, own)
        other = re.findall(rf"^finemask: \[team {1 - t}\] SST-2: done in .* {out}/{re.escape(name)}$", err, re.M)
        assert not other, other
print("  every job's line shown, with its team:", sorted(ends))
PY
}
"${mpi[@]}" -n 2 "$bin" run "$work/job.ini" --out "$work/out" --team-size 1 2> "$work/err"
check "$work/out" "$work/err" 0
rm -rf "$work/out"
"${mpi[@]}" -n 2 "$bin" run "$work/job.ini" --out "$work/out" --team-size 1 --quiet-jobs 2> "$work/err"
check "$work/out" "$work/err" 1
echo "team_lines: OK"
