#!/usr/bin/env bash
# test_docs.sh — the README's views of the project stay true: the state
# machine block is what the transition table prints, the layout block is
# what scripts/layout.sh makes of the tree, and the test command the README
# gives is the one CI runs.
set -uo pipefail
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh
PGM_BUILD=${PGM_BUILD:-build}

readme_fsm=$(sed -n '/<!-- fsm:begin -->/,/<!-- fsm:end -->/p' docs/internals.md | sed '1,2d;$d' | sed '$d')
table_fsm=$("$PGM_BUILD/pgmoverd" --describe)
t_assert_eq "docs/internals.md: the state machine is the transition table (pgmoverd --describe)" "$table_fsm" "$readme_fsm"

readme_layout=$(sed -n '/<!-- layout:begin -->/,/<!-- layout:end -->/p' README.md | sed '1,2d;$d' | sed '$d')
tree_layout=$(bash scripts/layout.sh)
t_assert_eq "scripts/layout.sh describes every folder" 0 "$?"
t_assert_eq "README layout is the tree (scripts/layout.sh; --readme rewrites it)" "$tree_layout" "$readme_layout" ||
    diff -u --label 'scripts/layout.sh' --label 'README.md' <(printf '%s\n' "$tree_layout") \
        <(printf '%s\n' "$readme_layout")

t_assert_contains "README gives the test command" "$(cat README.md)" "scripts/test.sh"
t_assert_contains "README gives the demo command" "$(cat README.md)" "scripts/demo.sh"
t_assert_contains ".ci/run runs the README's test command" "$(cat .ci/run)" "scripts/test.sh"

# every fault injection point of src/common/inject.c's table has its row in the README
points=$(sed -nE 's/^\t\{"([a-z]+\.[a-z]+)", .*/\1/p' src/common/inject.c)
t_check "inject.c has injection points" test -n "$points"
for p in $points; do
    t_assert_contains "README lists injection point $p" "$(cat README.md)" "| \`$p\` |"
done

dot=$("$PGM_BUILD/pgmoverd" --describe=dot)
t_assert_contains "graphviz output names every state" "$dot" "rollback_window -> finishing"

t_summary
