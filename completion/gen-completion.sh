#!/usr/bin/env bash
# gen-completion.sh PGMOVER PGMOVERD TEMPLATE — bash completion for pgmover,
# made at build time from the template and the programs' own tables, so that it
# never drifts: the commands (pgmover help), the commands that take an existing
# job (" JOB" in their usage; create names a new one), the job options
# (pgmoverd --describe-config) and the states (pgmoverd --describe).
set -euo pipefail
export LC_ALL=C

pgmover=$1 pgmoverd=$2 template=$3

commands=$("$pgmover" help | sed -n '/^Commands:/,/^$/p' | sed -nE 's/^  ([a-z]+) .*/\1/p')
job_commands=
for c in $commands; do
    [[ $c == create ]] && continue
    if "$pgmover" help "$c" | grep -qE '^  pgmover [a-z]+ \[?JOB'; then job_commands+=" $c"; fi
done
job_options=$("$pgmoverd" --describe-config | awk -F'\t' '$1 == "job" { print $2 }')
states=$("$pgmoverd" --describe | awk '{ n = split($1, from, "|"); for (i = 1; i <= n; i++) print from[i]; print $3 }' | grep -E '^[a-z_]+$' |
    sort -u)

for v in commands job_commands job_options states; do
    [[ -n ${!v// /} ]] || { echo "gen-completion.sh: no $v found" >&2; exit 1; }
done
line() { tr '\n' ' ' <<<"$1" | sed 's/^ *//; s/ *$//'; }
sed -e "s/@COMMANDS@/$(line "$commands")/" -e "s/@JOB_COMMANDS@/$(line "$job_commands")/" \
    -e "s/@JOB_OPTIONS@/$(line "$job_options")/" -e "s/@STATES@/$(line "$states")/" "$template"
