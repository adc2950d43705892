#!/bin/sh
# SPDX-License-Identifier: MIT
# Runs libphyr's C tests against the staged install ($STAGE):
#   - every tests/test_* program as the calling user (root in CI);
#   - the kernel tests again on the paths older kernels take
#     (PHYR_FORCE_FALLBACK): without PROCMAP_QUERY (6.7 to 6.10), without
#     PAGEMAP_SCAN and MADV_POPULATE (before 6.7, before 5.14);
#   - the ring tests again growing tables by re-registration (pre-6.13 path);
#   - with io_uring denied by a seccomp filter: ring tests must skip saying
#     so, the others must pass;
#   - phyr-inspect against processes of known layout (test_inspect.py);
#   - unpriv_* and a few others as an ordinary user keeping only CAP_IPC_LOCK,
#     memlock_* as one with no capability at all (setpriv, needs root);
#   - the ABI checks: header as C99/C11/C++17, exported symbols, soname,
#     no Swift runtime in NEEDED, pkg-config example, dlopen under env -i.
# Prints one line per run, and under it every skip the run printed ("SKIP
# <case>: <why>", tests/harness.h); closes with "N passed, N failed, N
# skipped", counting cases: a test program's "CASES n passed" line, a skip
# line each (a skipped part of a passed case is counted apart), one for a run
# of anything else.  Exits 1 on any failure; a run
# that skips without saying why, or exercises nothing, fails.
#
# PHYR_TESTS=kernel runs only what says something about the running kernel:
# the test programs on the kernel's own paths and as ordinary users -- for an
# older kernel booted under qemu (make check-kernels), where code runs 10 to
# 20 times slower and the forced fallbacks, seccomp and ABI runs would only
# repeat what the host showed.
set -u
bindir=$1
only_kernel=0
[ "${PHYR_TESTS:-all}" = kernel ] && only_kernel=1
: "${STAGE:?STAGE must name the staged install}"
: "${CC:=cc}" "${CXX:=c++}"
lib=$STAGE/lib/libphyr.so.0
pass=0 fail=0 skip=0 parts=0
work=$(mktemp -d /tmp/phyr-tests.XXXXXX)
# test_remap lowers vm.max_map_count for a moment (as root); whatever happens
# to it, the machine gets its own value back.
maps=$(cat /proc/sys/vm/max_map_count)
trap 'rm -rf "$work"; [ "$(id -u)" != 0 ] || echo "$maps" > /proc/sys/vm/max_map_count' EXIT

report() { # name rc output
	skips=$(printf '%s\n' "$3" | grep '^SKIP ')
	# A part of a passed case ("SKIP <case> (part): ...") is shown, and
	# counted apart: the case itself passed.
	nskip=$(printf '%s\n' "$3" | grep '^SKIP ' | grep -vc '^SKIP [^:]* (part):')
	nparts=$(printf '%s\n' "$3" | grep -c '^SKIP [^:]* (part):')
	cases=$(printf '%s\n' "$3" | sed -n 's/^CASES \([0-9][0-9]*\) passed$/\1/p' | tail -n 1)
	case $2 in
	0|77)
		if [ "$2" = 77 ] && [ "$nskip" = 0 ]; then
			set -- "$1" 1 "skipped without saying why:
$3"
		elif [ "$2" = 0 ] && [ "${cases:-1}" = 0 ] && [ "$((nskip + nparts))" = 0 ]; then
			set -- "$1" 1 "ran no case:
$3"
		fi ;;
	esac
	case $2 in
	0)
		pass=$((pass + ${cases:-1})); skip=$((skip + nskip)); parts=$((parts + nparts))
		echo "PASS $1${cases:+: $cases cases}" ;;
	77)
		skip=$((skip + nskip))
		echo "SKIP $1" ;;
	*)
		fail=$((fail + 1)); echo "FAIL $1 (exit $2)"; printf '%s\n' "$3" | sed 's/^/    /'
		return ;;
	esac
	[ -z "$skips" ] || printf '%s\n' "$skips" | sed 's/^/    /'
}

summary() {
	echo "$pass passed, $fail failed, $skip skipped$([ "$parts" = 0 ] || echo " (and $parts parts of passed cases)")"
}

run() { # name command...
	name=$1; shift
	out=$("$@" 2>&1); rc=$?
	report "$name" $rc "$out"
}

# A run that must skip (exit 77) and say why: passing or failing is wrong.
must_skip() { # name command...
	name=$1; shift
	out=$("$@" 2>&1); rc=$?
	if [ "$rc" = 77 ] && printf '%s\n' "$out" | grep -q SKIP; then
		report "$name" 0 ""
	else
		report "$name" 1 "expected a loud skip, got exit $rc:
$out"
	fi
}

for t in "$bindir"/test_*; do
	run "$(basename "$t")" "$t"
done
# Faulting by hand keeps THP on this kernel too (a read before the write
# would map the huge zero page, which 6.1 and 6.12 split on the write).
for t in test_pin test_populate; do
	run "$t [faulting by hand]" env PHYR_FORCE_FALLBACK=populate "$bindir/$t"
done
if [ $only_kernel = 0 ]; then
for t in test_pin test_counting test_segs test_hugetlb test_ring test_ring_big test_remap test_huge; do
	run "$t [6.7-6.10 path: no PROCMAP_QUERY]" env PHYR_FORCE_FALLBACK=procmap "$bindir/$t"
done
for t in test_pin test_counting test_segs test_hugetlb test_ring test_ring_big test_remap test_fork test_populate test_threads test_huge test_workers; do
	run "$t [pre-6.7 path: smaps+pagemap, faulting by hand]" env PHYR_FORCE_FALLBACK=scan,populate "$bindir/$t"
done
run "test_numa [one node, asked as if there were more: move_pages and numa_maps]" \
	env PHYR_FORCE_FALLBACK=node-query STAGE="$STAGE" "$bindir/test_numa"
run "test_ring_big [pre-6.13 path: tables grow by re-registering]" env PHYR_FORCE_FALLBACK=clone "$bindir/test_ring_big"
run "test_longterm [long-term ranges registered directly, not cloned]" env PHYR_FORCE_FALLBACK=clone "$bindir/test_longterm"
run "test_longterm [pre-6.7 path: smaps+pagemap, faulting by hand]" env PHYR_FORCE_FALLBACK=scan,populate "$bindir/test_longterm"

nouring="io_uring_setup,io_uring_enter,io_uring_register"
for t in test_ring test_ring_big test_ring_threads test_seccomp test_longterm test_workers test_ring_lifetime; do
	must_skip "$t [io_uring denied by seccomp: skips]" "$bindir/deny" $nouring 1 "$bindir/$t"
done
for t in test_pin test_hostile test_remap test_fork; do
	run "$t [io_uring denied by seccomp]" "$bindir/deny" $nouring 1 "$bindir/$t"
done
fi

# Ordinary users cannot read a build tree under /root: give them a copy.
cp -r "$STAGE" "$work/stage"
mkdir "$work/bin"
cp "$bindir"/* "$work/bin/"
cp "$(dirname "$0")/test_inspect.py" "$work/"
chmod -R a+rX "$work"
# phyr-inspect reads processes of known layout (as root, and as uid 65534 on
# its own processes and refused on root's).
run "test_inspect [phyr-inspect: layouts, io_uring buffers, permissions]" \
	python3 "$work/test_inspect.py" "$work/bin" "$work/stage/bin/phyr-inspect" "$work/stage/lib"
[ $only_kernel = 1 ] || run "test_inspect [pre-6.7 path: smaps+pagemap]" env PHYR_FORCE_FALLBACK=scan \
	python3 "$work/test_inspect.py" "$work/bin" "$work/stage/bin/phyr-inspect" "$work/stage/lib"
as_user() { # caps name program
	caps=$1 name=$2 prog=$3
	if [ "$(id -u)" != 0 ]; then
		run "$name" "$work/bin/$prog"
		return
	fi
	if [ "$caps" = ipc_lock ]; then
		set -- --inh-caps=+ipc_lock --ambient-caps=+ipc_lock
	else
		set -- --inh-caps=-all
	fi
	run "$name" setpriv --reuid=65534 --regid=65534 --clear-groups "$@" \
		env LD_LIBRARY_PATH="$work/stage/lib" "$work/bin/$prog"
}
for t in "$bindir"/unpriv_* "$bindir"/test_segs "$bindir"/test_counting "$bindir"/test_errors "$bindir"/test_ring \
	"$bindir"/test_hostile "$bindir"/test_remap "$bindir"/test_fork "$bindir"/test_populate "$bindir"/test_seccomp \
	"$bindir"/test_longterm "$bindir"/test_huge "$bindir"/test_workers "$bindir"/test_ring_lifetime; do
	b=$(basename "$t")
	as_user ipc_lock "$b [uid 65534, CAP_IPC_LOCK only]" "$b"
done
if [ "$(id -u)" = 0 ] && [ $only_kernel = 0 ]; then
	# The pre-6.7 path without PFNs guesses huge pages from smaps' totals:
	# PHYR_PIN_HUGE must collapse what the guess calls huge, too.
	run "test_huge [pre-6.7 path, uid 65534: no PFNs]" setpriv --reuid=65534 --regid=65534 --clear-groups \
		--inh-caps=+ipc_lock --ambient-caps=+ipc_lock \
		env LD_LIBRARY_PATH="$work/stage/lib" PHYR_FORCE_FALLBACK=scan,populate "$work/bin/test_huge"
	run "test_numa [uid 65534, CAP_IPC_LOCK only, asked as if there were more nodes]" setpriv --reuid=65534 \
		--regid=65534 --clear-groups --inh-caps=+ipc_lock --ambient-caps=+ipc_lock env LD_LIBRARY_PATH="$work/stage/lib" \
		PHYR_FORCE_FALLBACK=node-query STAGE="$work/stage" "$work/bin/test_numa"
fi
for t in "$bindir"/memlock_* "$bindir"/test_workers "$bindir"/test_ring_lifetime; do
	b=$(basename "$t")
	as_user none "$b [uid 65534, no capabilities: the 8 MiB lock limit]" "$b"
done

if [ $only_kernel = 1 ]; then
	summary
	[ "$fail" = 0 ]
	exit
fi

# ---- ABI
hdr=$STAGE/include/phyr.h
for std in c99 c11; do
	run "abi: phyr.h alone as $std -pedantic" \
		$CC -std=$std -Wall -Wextra -Werror -pedantic -fsyntax-only -x c "$hdr"
done
run "abi: phyr.h alone as c++17 -pedantic" $CXX -std=c++17 -Wall -Wextra -Werror -pedantic -fsyntax-only -x c++ "$hdr"

# Global symbols only: the core module's package symbols sit in .dynsym with
# local binding (the version script's "local: *"), which no program can bind to.
exported=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[A-Z]$/ && $2 != "A" { sub(/@.*/, "", $3); print $3 }' | sort)
api=$(sed -n 's/^[[:space:]]*\(phyr_[a-z_]*\);/\1/p; s/^[[:space:]]*\(ring_[a-z_]*\);/\1/p' src/phyr.map | sort)
run "abi: exported symbols are exactly the API in src/phyr.map" \
	sh -c '[ "$1" = "$2" ] || { echo "exported:"; echo "$1"; echo "api:"; echo "$2"; exit 1; }' - "$exported" "$api"
run "abi: 0.3.1's symbols and version nodes, struct sizes, offsets and constants kept" \
	sh abi/check.sh "$lib" "$STAGE/include" 0.3.1
run "abi: soname libphyr.so.0, NODELETE, no Swift runtime in NEEDED" sh -c '
	d=$(readelf -d "$1")
	echo "$d" | grep -q "Library soname: \[libphyr.so.0\]" || { echo "soname"; exit 1; }
	echo "$d" | grep -q "NODELETE" || { echo "no NODELETE"; exit 1; }
	if echo "$d" | grep NEEDED | grep -i swift; then exit 1; fi' - "$lib"

run "abi: Embedded Swift: NEEDED only libc, libm and ld.so, at most 1 MiB as installed" sh -c '
	extra=$(readelf -d "$1" | sed -n "s/.*NEEDED.*\[\(.*\)\]/\1/p" | grep -vx "libc.so.6\|libm.so.6\|ld-linux-x86-64.so.2\|ld-linux-aarch64.so.1")
	[ -z "$extra" ] || { echo "NEEDED also: $extra"; exit 1; }
	size=$(stat -L -c %s "$1"); [ "$size" -le 1048576 ] || { echo "$size bytes"; exit 1; }' - "$lib"
run "abi: every exported function has a man page that names it" sh -c '
	for f in $1; do grep -q "^\.BI\? .*$f" "man/$f.3" 2>/dev/null || { echo "man/$f.3 missing or wrong"; exit 1; }; done' - "$api"

run "install: make uninstall removes exactly what make install wrote" sh -c "
	make -s --no-print-directory install DESTDIR=$work/dest PREFIX=/usr LIBDIR=/usr/lib/x86_64-linux-gnu >/dev/null &&
	[ -n \"\$(find $work/dest -type f)\" ] &&
	make -s --no-print-directory uninstall DESTDIR=$work/dest PREFIX=/usr LIBDIR=/usr/lib/x86_64-linux-gnu &&
	left=\$(find $work/dest -type f -o -type l) && [ -z \"\$left\" ] || { echo left: \$left; exit 1; }"

pc="env PKG_CONFIG_PATH=$STAGE/lib/pkgconfig pkg-config"
run "abi: example builds with pkg-config as c99 -pedantic and runs" sh -c "
	$CC -std=c99 -Wall -Wextra -Werror -pedantic \$($pc --cflags phyr) examples-c/pin_segments.c \
		-o $work/pin_segments \$($pc --libs phyr) -Wl,-rpath,$STAGE/lib && $work/pin_segments"
run "abi: ring example builds with pkg-config and reads a whole file" sh -c "
	$CC -std=c11 -Wall -Wextra -Werror \$($pc --cflags phyr) examples-c/ring_read.c \
		-o $work/ring_read \$($pc --libs phyr) -luring -Wl,-rpath,$STAGE/lib &&
	head -c 5000000 /dev/urandom > $work/data && $work/ring_read $work/data | grep -q 'read 5000000 bytes'"
run "abi: C++ program links and calls the API" sh -c "
	$CXX -std=c++17 -Wall -Wextra -Werror -pedantic \$($pc --cflags phyr) tests/abi/use.cpp \
		-o $work/use \$($pc --libs phyr) -Wl,-rpath,$STAGE/lib && $work/use"
run "abi: dlopen under env -i, pin, unpin, dlclose" sh -c "
	$CC -std=c99 -Wall -Wextra -Werror tests/abi/dlopen.c -o $work/dlopen -ldl && env -i $work/dlopen $lib"

summary
[ "$fail" = 0 ]
