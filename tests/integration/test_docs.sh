#!/usr/bin/env bash
# test_docs.sh — the README's views of the project stay true: the state
# machine block is what the transition table prints, and the test command
# the README gives is the one CI runs.
set -uo pipefail
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh
PGM_BUILD=${PGM_BUILD:-build}

readme_fsm=$(sed -n '/<!-- fsm:begin -->/,/<!-- fsm:end -->/p' README.md | sed '1,2d;$d' | sed '$d')
table_fsm=$("$PGM_BUILD/pgmoverd" --describe)
t_assert_eq "README state machine is the transition table (pgmoverd --describe)" "$table_fsm" "$readme_fsm"

t_assert_contains "README gives the test command" "$(cat README.md)" "scripts/test.sh"
t_assert_contains "README gives the demo command" "$(cat README.md)" "scripts/demo.sh"
t_assert_contains ".ci/run runs the README's test command" "$(cat .ci/run)" "scripts/test.sh"

dot=$("$PGM_BUILD/pgmoverd" --describe=dot)
t_assert_contains "graphviz output names every state" "$dot" "rollback_window -> finishing"

t_summary
