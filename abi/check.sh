#!/bin/sh
# SPDX-License-Identifier: MIT
# The ABI check against a release: every symbol it exported is exported
# still, of the same kind and in the same version node (new ones may come in
# new nodes), and its public structs and constants are what they were
# (abi/layout.c, compiled against the header being installed).
#
#   sh abi/check.sh LIB INCLUDEDIR [RELEASE]       (RELEASE: 0.3.1)
set -u
export LC_ALL=C
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
# A node a release shipped never changes: nothing new may join it.
nodes=$(sed -n 's/.*@@\(.*\)/\1/p' "$here/$release.symbols" | sort -u)
for node in $nodes; do
	added=$(grep "@@$node\$" "$work/symbols" | comm -13 "$here/$release.symbols" -)
	if [ -n "$added" ]; then
		echo "ABI: symbols added to $release's version node $node (a new release needs a new node):"
		printf '%s\n' "$added" | sed 's/^/    /'
		status=1
	fi
done
if ! ${CC:-cc} -std=c99 -Wall -Werror -c -I"$inc" "$here/prototypes.c" -o "$work/prototypes.o" 2> "$work/cc"; then
	echo "ABI: a function's type differs from $release's:"
	sed 's/^/    /' "$work/cc"
	status=1
fi

${CC:-cc} -std=c99 -Wall -Werror -I"$inc" "$here/layout.c" -o "$work/layout" || exit 1
"$work/layout" > "$work/layout.txt"
if ! diff -u "$here/$release.layout" "$work/layout.txt" > "$work/diff"; then
	echo "ABI: public structs or constants differ from $release:"
	sed 's/^/    /' "$work/diff"
	status=1
fi
[ $status = 0 ] && echo "ABI of $release kept: $(wc -l < "$here/$release.symbols") symbols and their types," \
	"$(wc -l < "$here/$release.layout") sizes, alignments, offsets and values"
exit $status
