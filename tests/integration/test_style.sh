#!/usr/bin/env bash
# The tree's one style, checked by tools rather than by eye (no server needed):
#
#   1. every C file is as clang-format (.clang-format at the top) writes it
#   2. every symbol the libraries export is pgm_-prefixed, or used only inside the
#      folder that defines it (pgl_ in pipeline/pglogical, trg_ in pipeline/triggers, ...):
#      read from the object files with nm
#   3. every C file opens with a block comment saying what it is for
#   4. one include path for cJSON: <cjson/cJSON.h>
#
# Run from the source tree: PGM_BUILD=build bash tests/integration/test_style.sh
# To reformat: clang-format -i $(git ls-files '*.c' '*.h')
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source=tests/integration/lib.sh
. "$HERE/lib.sh"

cd "$ROOT" || exit 1
PGM_BUILD=$(cd "${PGM_BUILD:-build}" 2>/dev/null && pwd) || {
    echo "test_style: no build directory (set PGM_BUILD)" >&2
    exit 1
}
t_need_cmd test_style clang-format nm git

mapfile -t files < <(git ls-files '*.c' '*.h')

# 1. formatted
bad=()
for f in "${files[@]}"; do
    clang-format --dry-run --Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done
t_check "clang-format: ${#files[@]} files as .clang-format writes them" test "${#bad[@]}" -eq 0 ||
    t_detail "not formatted: ${bad[*]}; run clang-format -i on them"

# 2. exports: pgm_, or internal to their folder
# an object's folder: src_pipeline_pglogical_pglogical.c.o -> src/pipeline/pglogical
obj_folder() {
    local o=${1##*/} src
    o=${o%.c.o}
    for src in $(git ls-files 'src/*.c'); do
        if [[ $(tr '/' '_' <<<"${src%.c}") == "$o" ]]; then
            dirname "$src"
            return
        fi
    done
    echo "?"
}
declare -A folder_of=() defined_in=()
objs=("$PGM_BUILD"/libpgmover.a.p/*.o "$PGM_BUILD"/libpgmover-cli.a.p/*.o)
for o in "${objs[@]}"; do
    folder_of[$o]=$(obj_folder "$o")
    while read -r sym; do
        [[ $sym == pgm_* ]] && continue
        defined_in[$sym]=${folder_of[$o]}
    done < <(nm -g --defined-only "$o" 2>/dev/null | awk '$2 ~ /^[TDRB]$/ { print $3 }')
done
leaks=()
for o in "${objs[@]}"; do
    while read -r sym; do
        [[ -n ${defined_in[$sym]:-} ]] || continue
        [[ ${defined_in[$sym]} == "${folder_of[$o]}" ]] || leaks+=("$sym (${defined_in[$sym]}, used in ${folder_of[$o]})")
    done < <(nm -u "$o" 2>/dev/null | awk '{ print $2 }')
done
t_check "exports: ${#defined_in[@]} symbols without pgm_ stay inside their folder" test "${#leaks[@]}" -eq 0 ||
    t_detail "give these the pgm_ prefix or keep them in their folder: ${leaks[*]}"
t_check "exports: the object files were read" test "${#objs[@]}" -gt 20

# 3. block comments
nocomment=()
for f in "${files[@]}"; do
    [[ $(head -c 2 "$f") == "/*" ]] || nocomment+=("$f")
done
t_check "every C file opens with a block comment" test "${#nocomment[@]}" -eq 0 ||
    t_detail "${nocomment[*]}"

# 4. one include path
other=$(git grep -l '#include <cJSON.h>' -- '*.c' '*.h' || true)
t_check "cJSON is included as <cjson/cJSON.h> everywhere" test -z "$other" || t_detail "$other"

# 5. what pgmover prints names installed paths, never the source tree's: a string literal
# of src/ (not a comment) naming conf/, scripts/, tests/, bench/, systemd/ or man/ files
# would send an operator of an installed pgmover to a file they do not have
repo=$(git grep -nE '"[^"]*(^|[ (`])(conf|scripts|tests|bench|systemd|man)/[a-z_.-]+[^"]*"' -- 'src/*.c' |
    grep -vE '^[^:]+:[0-9]+:\s*(/?\*|//)' || true)
t_check "messages name installed paths, not the source tree's" test -z "$repo" || t_detail "$repo"

t_summary
