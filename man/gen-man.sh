#!/usr/bin/env bash
# gen-man.sh — the generated sections of the manual pages, so that they
# never drift from the code: meson runs it at build time on the built
# programs and a template (configured by meson), and it prints the page.
#
#   gen-man.sh conf PGMOVERD TEMPLATE   pgmoverd.conf(5): the lines
#                                       .\" gen-man: daemon settings   and
#                                       .\" gen-man: job settings   become the
#                                       settings table (pgmoverd --describe-config)
#   gen-man.sh cli PGMOVER TEMPLATE     pgmover(1): the line
#                                       .\" gen-man: commands   becomes the
#                                       command table (pgmover help)
set -euo pipefail
export LC_ALL=C

mode=$1 prog=$2 template=$3

# text for a roff line: backslashes escaped, "--x" and " -x" as minus signs,
# a leading dot or quote made literal
roff() {
    sed -e 's/\\/\\e/g' -e 's/--/\\-\\-/g' -e 's/\([ [|]\)-\([a-zA-Z]\)/\1\\-\2/g' -e "s/^[.']/\\\\\\&&/"
}

# one .TP entry per setting of SECTION (daemon | job) of pgmoverd --describe-config
settings() {
    local want=$1 section name type dflt allowed reload help
    # fields split on \037: a tab in IFS would merge the empty ones
    while IFS=$'\037' read -r section name type dflt allowed reload help; do
        [[ $section == "$want" ]] || continue
        printf '.TP\n.BI "%s = " %s\n' "$name" "$(tr ' ' '_' <<<"$type")"
        printf '%s\n' "$help." | roff
        printf '.br\n'
        if [[ -n $dflt ]]; then
            printf 'Default: \\fB%s\\fR' "$(roff <<<"$dflt")"
        else
            printf 'Default: empty'
        fi
        [[ -z $allowed ]] || printf '; allowed: %s' "$(roff <<<"$allowed")"
        if [[ $reload == reload && $section == job ]]; then
            printf '; SIGHUP applies it to new jobs.\n'
        elif [[ $reload == reload ]]; then
            printf '; SIGHUP applies it.\n'
        else
            printf '; takes effect when pgmoverd restarts.\n'
        fi
    done < <(tr '\t' '\037' <"$describe")
}

# one .TP entry per command of pgmover help, with its usage line
commands() {
    local name usage summary
    "$prog" help | sed -n '/^Commands:/,/^$/p' | sed -nE 's/^  ([a-z]+) +(.*)$/\1\t\2/p' |
        while IFS=$'\t' read -r name summary; do
            usage=$("$prog" help "$name" | sed -nE 's/^  pgmover (.*)$/\1/p')
            [[ -n $usage ]] || { echo "gen-man.sh: no usage line for \"$name\" in pgmover help $name" >&2; exit 1; }
            # the first usage line is the tag; a command's other forms follow it
            printf '.TP\n.B "%s"\n' "$(head -1 <<<"$usage" | roff)"
            tail -n +2 <<<"$usage" | roff | sed 's/.*/.B "&"\n.br/'
            printf '%s\n' "${summary^}." | roff
        done
}

describe=$(mktemp)
trap 'rm -f "$describe"' EXIT
case $mode in
conf)
    "$prog" --describe-config >"$describe"
    [[ -s $describe ]] || { echo "gen-man.sh: $prog --describe-config printed nothing" >&2; exit 1; }
    while IFS= read -r line; do
        case $line in
        '.\" gen-man: daemon settings') settings daemon ;;
        '.\" gen-man: job settings') settings job ;;
        *) printf '%s\n' "$line" ;;
        esac
    done <"$template"
    ;;
cli)
    out=$(commands)
    [[ -n $out ]] || { echo "gen-man.sh: $prog help lists no commands" >&2; exit 1; }
    while IFS= read -r line; do
        if [[ $line == '.\" gen-man: commands' ]]; then printf '%s\n' "$out"; else printf '%s\n' "$line"; fi
    done <"$template"
    ;;
*)
    echo "usage: gen-man.sh conf|cli PROGRAM TEMPLATE" >&2
    exit 2
    ;;
esac
