#!/bin/sh
# SPDX-License-Identifier: MIT
# Runs libphyr's tests on other kernels, each booted under qemu by
# run-on-kernel.sh (software emulation here: 10 to 20 times slower, so only
# what says something about the kernel runs: tests/run.sh with
# PHYR_TESTS=kernel, then the Swift tests; then test_numa again in a VM with
# two NUMA nodes).
#
#   sh tests/kernels.sh BINDIR KERNEL...
#
# KERNEL is 6.1 (Debian 12's, from bookworm's archive) or 6.12 (Debian 13's:
# bookworm's apt does not list it, so its package is downloaded from the
# trixie archive, never installed).  Needs root and qemu-system-x86,
# busybox-static, cpio, kmod, e2fsprogs (make check-kernels installs them).
# Prints each kernel's summary and what the probes decided there; exits 1 if
# any kernel failed.
set -u
bindir=$1; shift
: "${STAGE:?STAGE must name the staged install}"
here=$(cd "$(dirname "$0")/.." && pwd)
cache=${PHYR_KERNEL_CACHE:-$HOME/.cache/phyr-kernels}
mkdir -p "$cache"

tool=
for t in "${RUN_ON_KERNEL:-}" "$here/../shared/tools/run-on-kernel.sh" /work/shared/tools/run-on-kernel.sh; do
	if [ -n "$t" ] && [ -x "$t" ]; then tool=$t; break; fi
done
[ -n "$tool" ] || { echo "kernels.sh: run-on-kernel.sh not found (set RUN_ON_KERNEL)" >&2; exit 1; }

# Debian 13's kernel package, downloaded once into the cache.
trixie_kernel() {
	found=$(ls "$cache"/linux-image-6.12*.deb 2>/dev/null | head -n 1)
	if [ -n "$found" ]; then echo "$found"; return; fi
	uri=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/*.sources 2>/dev/null)
	[ -n "$uri" ] || uri=$(awk '/^deb / { print $2; exit }' /etc/apt/sources.list 2>/dev/null)
	mkdir -p "$cache/trixie/lists"
	echo "deb $uri trixie main" > "$cache/trixie/sources.list"
	o="-o Dir::Etc::SourceList=$cache/trixie/sources.list -o Dir::Etc::SourceParts=/dev/null"
	o="$o -o Dir::State::Lists=$cache/trixie/lists"
	apt-get $o update -qq >&2 || return 1
	pkg=$(apt-cache $o depends linux-image-amd64 | awk '/Depends: linux-image-6/ { print $2; exit }')
	[ -n "$pkg" ] || return 1
	(cd "$cache" && apt-get $o download -qq "$pkg" >&2) || return 1
	ls "$cache"/linux-image-6.12*.deb | head -n 1
}

status=0
for k in "$@"; do
	case $k in
	6.12) spec=$(trixie_kernel) || { echo "kernels.sh: cannot fetch Debian 13's kernel" >&2; status=1; continue; } ;;
	*) spec=$k ;;
	esac
	echo "==== Linux $k ($spec)"
	start=$(date +%s)
	# The C tests, then the Swift tests (built on this machine, run there).
	"$tool" -C "$here" -e STAGE="$STAGE" -e PHYR_TESTS=kernel -e NO_COLOR=1 -e PHYR_TEST_SCALE=0.1 "$spec" -- sh -c '
		"$1/probes"
		sh tests/run.sh "$1"; c=$?
		echo "---- Swift tests"
		"$2" --testing-library swift-testing; s=$?
		[ $c = 0 ] && [ $s = 0 ]' - "$bindir" "${SWIFT_TESTS:?SWIFT_TESTS must name the Swift test binary}" \
		> "$cache/run-$k.log" 2>&1
	rc=$?
	grep -aE "^ *(FAIL|SKIP)|passed, .* failed|Test run with|recorded an issue|skipped|libphyr: probe|guest: kernel|command ran" \
		"$cache/run-$k.log" | sort -u
	echo "==== Linux $k: exit $rc, $(( $(date +%s) - start )) s; full log $cache/run-$k.log"
	[ $rc = 0 ] || status=1
	# Two NUMA nodes (one vCPU each): the cases of test_numa that skip on
	# one node -- reporting across a node boundary and placement.
	start=$(date +%s)
	"$tool" --numa 2 -C "$here" -e STAGE="$STAGE" -e NO_COLOR=1 "$spec" -- sh -c '
		echo "---- as root"; "$1/test_numa"; r=$?
		# As uid 65534 with CAP_IPC_LOCK, from a copy it can read.
		w=$(mktemp -d) && cp -r "$STAGE" "$w/stage" && cp "$1/test_numa" "$w/" && chmod -R a+rX "$w"
		echo "---- as uid 65534"
		setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=+ipc_lock --ambient-caps=+ipc_lock \
			env LD_LIBRARY_PATH="$w/stage/lib" STAGE="$w/stage" "$w/test_numa"; u=$?
		rm -rf "$w"
		[ $r = 0 ] && [ $u = 0 ]' - "$bindir" > "$cache/run-$k-numa.log" 2>&1
	rc=$?
	grep -aE "^----|^ *(FAIL|SKIP)|^CASES|command ran" "$cache/run-$k-numa.log"
	echo "==== Linux $k, two NUMA nodes: test_numa exit $rc, $(( $(date +%s) - start )) s"
	[ $rc = 0 ] || status=1
done
exit $status
