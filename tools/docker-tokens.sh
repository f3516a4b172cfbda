#!/bin/sh
# `make docker-tokens`: the compose deployment's API tokens. Usage:
#   tools/docker-tokens.sh DIR BIN ROLE...
# DIR: where the tokens go (DOCKER_DIR); BIN: the virtualenv's bin/ (its python and
# citybrain). Writes a fresh secret per role in DIR/<role>.token (mode 0600; an existing
# one is kept, a blank one replaced) and their SHA-256 hashes in DIR/tokens.yaml, the file
# docker/compose.yaml mounts (hashes only: 0644 so the containers' user can read it).
# Every fault is one line naming the file, status 1 (make adds its "Error 1"), and leaves
# no half-written file behind.
#
# A script rather than the recipe's one-liners (t168): a DOCKER_DIR with a space was sh's
# "test: unexpected operator" and "Syntax error"; a missing one sh's "cannot create";
# a token file another user could read was kept as it was, silently; a token file that was
# no token was hash-token's "the token has byte 0x20", naming no file, and left
# tokens.yaml.new behind.
set -u

dir=$1
bin=$2
shift 2

fail() {
    echo "make docker-tokens: $*" >&2
    exit 1
}

[ -d "$dir" ] || fail "DOCKER_DIR '$dir' is not a directory: create it, or give another (make docker-tokens DOCKER_DIR=...)"
[ -w "$dir" ] && [ -x "$dir" ] || fail "cannot write in DOCKER_DIR '$dir' (permission denied): give a directory you can write in"
absolute=$(cd "$dir" && pwd) || fail "cannot enter DOCKER_DIR '$dir'"

tmp="$dir/tokens.yaml.new"
trap 'rm -f "$tmp" "$dir"/*.token.new' EXIT

for role; do
    file="$dir/$role.token"
    if [ -e "$file" ] && [ ! -f "$file" ]; then
        fail "$file is not a file: move it away and run make docker-tokens again"
    fi
    # A blank file holds no token: it is replaced, as a missing one is written.
    if [ -f "$file" ] && grep -q '[^[:space:]]' "$file" 2>/dev/null; then
        [ -r "$file" ] || fail "cannot read $file (permission denied)"
        mode=$(stat -c %a "$file") || fail "cannot read the mode of $file"
        case $mode in
        600 | 400) ;;
        *)
            # A secret others can read: tightened, and said, since it may have been read.
            chmod 600 "$file" || fail "$file has mode $mode (others may read it) and cannot be changed to 600"
            echo "$file had mode $mode (readable by others): now 600; if others may have read it, delete it and run make docker-tokens again for a new token"
            ;;
        esac
        continue
    fi
    (umask 077 && "$bin/python" -c 'import secrets; print(secrets.token_urlsafe(24))' >"$file.new") \
        || fail "cannot write $file.new"
    mv -f "$file.new" "$file" || fail "cannot write $file"
done

{
    echo 'tokens:'
    for role; do
        file="$dir/$role.token"
        # hash-token says what is wrong with the token; the file is named here.
        hash=$("$bin/citybrain" hash-token <"$file" 2>&1) \
            || fail "$file: ${hash#citybrain: }; delete it and run make docker-tokens again for a new token"
        echo "  - {name: compose-$role, role: $role, sha256: '$hash'}"
    done
} >"$tmp" || exit 1
mv -f "$tmp" "$dir/tokens.yaml" || fail "cannot write $dir/tokens.yaml"
chmod 644 "$dir/tokens.yaml" || fail "cannot make $dir/tokens.yaml readable (mode 644)"

roles=$(echo "$@" | tr ' ' ,)
echo "$dir/tokens.yaml: hashes of $dir/{$roles}.token"
# The token file by absolute path: the line works typed in a new shell, from any directory
# (quoted when the path has a space or another character the shell would split on).
shown="$absolute/operator.token"
case $shown in
*[!A-Za-z0-9/._+-]*) shown="'$(printf %s "$shown" | sed "s/'/'\\\\''/g")'" ;;
esac
echo "operator API: export CITYBRAIN_API_TOKEN=\$(cat $shown)"
