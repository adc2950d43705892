#!/bin/sh
# SPDX-License-Identifier: MIT
# The ABI check against a release: every symbol it exported is exported
# still, of the same kind and in the same version node (new ones may come in
# new nodes), and its public structs and constants are what they were
# (abi/layout.c, compiled against the header being installed).
#
#   sh abi/check.sh LIB INCLUDEDIR [RELEASE]       (RELEASE: 0.3.1)
set -u
lib=$1 inc=$2 release=${3:-0.3.1}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d /tmp/phyr-abi.XXXXXX)
trap 'rm -rf "$work"' EXIT
status=0

nm -D --defined-only --with-symbol-versions "$lib" | awk '$2 ~ /^[A-Z]$/ && $2 != "A" { print $2, $3 }' |
	sort > "$work/symbols"
missing=$(comm -23 "$here/$release.symbols" "$work/symbols")
if [ -n "$missing" ]; then
	echo "ABI: symbols of $release gone or moved to another version node:"
	printf '%s\n' "$missing" | sed 's/^/    /'
	status=1
fi

${CC:-cc} -std=c99 -Wall -Werror -I"$inc" "$here/layout.c" -o "$work/layout" || exit 1
"$work/layout" > "$work/layout.txt"
if ! diff -u "$here/$release.layout" "$work/layout.txt" > "$work/diff"; then
	echo "ABI: public structs or constants differ from $release:"
	sed 's/^/    /' "$work/diff"
	status=1
fi
[ $status = 0 ] && echo "ABI of $release kept: $(wc -l < "$here/$release.symbols") symbols, $(wc -l < "$here/$release.layout") sizes, offsets and values"
exit $status
