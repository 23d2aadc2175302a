#!/usr/bin/env bash
# layout.sh — the Layout block of README.md, made from the tree: one entry per
# folder (include/*, src/* with their subfolders indented, tests/*, and the
# other top-level folders), described by the first comment of the folder's
# meson.build when it reads "# <folder>: ..." (a "#" line right after it
# continues it), else by the small table below; under each src/ folder, its
# .c files (plan.c plan_eval.c as plan{,_eval}.c). tests/integration/
# test_docs.sh checks that README.md holds this output.
#
#   scripts/layout.sh            print the block
#   scripts/layout.sh --readme   put it into README.md, between
#                                <!-- layout:begin --> and <!-- layout:end -->
#
# A folder with no description fails (exit 1, naming it): a new folder gets
# its "# <folder>: ..." line, or a row here when it has no meson.build.
set -euo pipefail
cd "$(dirname "$0")/.."
export LC_ALL=C

WIDTH=100 # of a line of the block
NAME=19   # the folder column; descriptions start after it

# folders without a meson.build of their own: keep this short
table() {
    case $1 in
    include/pgmover) echo "protocol.h: the protocol version, error codes and CLI exit codes runbooks rely on" ;;
    src/cli) echo "pgmover (cli.h): command table, socket client, output, plan, verify, report" ;;
    tests/unit) echo "Check suites, no server needed, run under ASan+UBSan" ;;
    tests/integration) echo "bash tests on real PostgreSQL 15 + pglogical clusters (tests/testbed)" ;;
    tests/testbed) echo "testbed.sh: a Heroku-like TLS source and a target on loopback" ;;
    bench) echo "side-by-side benchmarks against pg_dump|pg_restore and pgcopydb" ;;
    docs) echo "internals.md: the copy engine and the state machine, for whoever changes the code; report.png, a report's top as test_report.sh's Chromium drew it" ;;
    scripts) echo "deps.sh (Debian packages), test.sh (every test), demo.sh, layout.sh (this block)" ;;
    *) return 1 ;;
    esac
}

# a folder's description, one line per comment line of its meson.build
describe() {
    local dir=$1 f=$1/meson.build first=
    if [[ -f $f ]]; then IFS= read -r first <"$f" || true; fi
    if [[ $first == "# $dir: "* ]]; then
        awk -v p="# $dir: " 'NR == 1 { print substr($0, length(p) + 1); next }
            /^#/ { sub(/^#[ \t]*/, ""); print; next } { exit }' "$f"
        return 0
    fi
    table "$dir" && return 0
    echo "scripts/layout.sh: no description for $dir/: start its meson.build with" \
        "\"# $dir: ...\", or add it to the table in scripts/layout.sh" >&2
    return 1
}

# build directories and whatever .gitignore leaves out are not the tree
skipped() {
    [[ -e $1/meson-info ]] || git check-ignore -q "$1" 2>/dev/null
}

# a folder's .c files, compactly: plan.c plan_eval.c is plan{,_eval}.c, and
# the words wrapped into the description column should they not fit
files() {
    find "$1" -maxdepth 1 -name '*.c' -printf '%f\n' | sed 's/\.c$//' | sort | awk '
        { key = $0; sub(/_.*/, "", key)
          if (!(key in n)) order[++keys] = key
          member[key, ++n[key]] = $0 }
        END {
            for (k = 1; k <= keys; k++) {
                key = order[k]
                if (n[key] == 1) { print member[key, 1] ".c"; continue }
                whole = 0
                for (i = 1; i <= n[key]; i++) if (member[key, i] == key) whole = 1
                list = ""
                for (i = 1; i <= n[key]; i++)
                    list = list (i > 1 ? "," : "") substr(member[key, i], length(key) + 1 + !whole)
                print key (whole ? "" : "_") "{" list "}.c"
            }
        }' | awk -v ind="$NAME" -v width="$WIDTH" '{
        if (line != "" && length(line) + 1 + length($0) > width - ind) { print line; line = "" }
        line = line == "" ? $0 : line " " $0
    } END { if (line != "") print line }'
}

# one entry: the folder, its description, and for src/ its .c files
entry() {
    local dir=$1 shown=$2 desc first=1 line
    desc=$(describe "$dir") || exit 1
    while IFS= read -r line; do
        if ((first)); then
            printf '%-*s %s\n' $((NAME - 1)) "$shown" "$line"
            first=0
        else
            printf '%*s%s\n' "$NAME" '' "$line"
        fi
    done <<<"$desc"
    if [[ $dir == src/* ]]; then
        files "$dir" | while IFS= read -r line; do printf '%*s%s\n' "$NAME" '' "$line"; done
    fi
}

# a folder, then its subfolders indented under it (src/ only)
walk() {
    local dir=$1 indent=$2 sub
    entry "$dir" "$indent${3:-$dir}/"
    [[ $dir == src/* ]] || return 0
    for sub in "$dir"/*/; do
        sub=${sub%/}
        if [[ ! -d $sub ]] || skipped "$sub"; then continue; fi
        walk "$sub" "$indent  " "${sub##*/}"
    done
}

block() {
    local top dir
    for top in include src tests; do
        for dir in "$top"/*/; do
            dir=${dir%/}
            if [[ ! -d $dir ]] || skipped "$dir"; then continue; fi
            walk "$dir" ""
        done
    done
    for dir in */; do
        dir=${dir%/}
        case $dir in include | src | tests) continue ;; esac
        skipped "$dir" && continue
        walk "$dir" ""
    done
}

out=$(block)
case ${1:-} in
"") printf '%s\n' "$out" ;;
--readme)
    if ! grep -q '^<!-- layout:begin -->$' README.md || ! grep -q '^<!-- layout:end -->$' README.md; then
        echo "scripts/layout.sh: README.md has no <!-- layout:begin --> / <!-- layout:end --> markers" >&2
        exit 1
    fi
    BLOCK=$out awk '
        /^<!-- layout:begin -->$/ { print; print "```"; print ENVIRON["BLOCK"]; print "```"; skip = 1; next }
        /^<!-- layout:end -->$/ { skip = 0 }
        !skip' README.md >README.md.tmp
    mv README.md.tmp README.md
    ;;
*)
    echo "usage: scripts/layout.sh [--readme]" >&2
    exit 2
    ;;
esac
