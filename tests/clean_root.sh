#!/bin/sh
# SPDX-License-Identifier: MIT
# The packages as a user meets them: a clean Debian 12 root (mmdebstrap, no
# Swift anywhere) gets the three packages with dpkg -i, builds a program with
# pkg-config and another with CMake and runs them (pin, register,
# READ_FIXED, every byte checked), dlopens libphyr.so.0 under env -i, runs
# phyr-inspect, purges the packages and checks that no file of theirs is
# left.  Needs root and mmdebstrap.
#
#   sh tests/clean_root.sh DEBDIR
set -eu
debs=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")/.." && pwd)
root=$(mktemp -d /tmp/phyr-clean-root.XXXXXX)
cleanup() {
	umount "$root/proc" "$root/sys" 2>/dev/null || true
	rm -rf --one-file-system "$root"
}
trap cleanup EXIT

start=$(date +%s)
mmdebstrap --quiet --variant=apt --include=gcc,libc6-dev,pkg-config,cmake,make,liburing-dev \
	bookworm "$root" >/dev/null
echo "clean root: Debian 12 with gcc, pkg-config, cmake, liburing-dev ($(( $(date +%s) - start )) s)"
mount -t proc proc "$root/proc"
mount -t sysfs sysfs "$root/sys"
mkdir -p "$root/phyr"
cp "$debs"/*.deb "$root/phyr/"
cp -r "$here/tests/install" "$root/phyr/src"
cp "$here/tests/abi/dlopen.c" "$root/phyr/src/"

chroot "$root" sh -eu -c '
	cd /phyr
	if command -v swift >/dev/null || ls /usr/lib/*/libswiftCore.so* >/dev/null 2>&1; then
		echo "FAIL: Swift in the clean root"; exit 1
	fi
	listing() {
		find / -xdev \( -path /proc -o -path /phyr -o -path /tmp -o -path /var/lib/dpkg -o -path /var/log \
			-o -path /var/cache -o -path /etc/ld.so.cache -o -path /root \) -prune -o -print | sort
	}
	listing > /phyr/before
	dpkg -i ./*.deb >/dev/null
	echo "installed: $(dpkg-query -W -f "\${Package} \${Version}\n" libphyr0 libphyr-dev phyr-inspect | paste -sd, - | sed "s/,/, /g")"

	cc -std=c11 -Wall -Werror $(pkg-config --cflags phyr) src/installed.c -o installed-pc $(pkg-config --libs phyr) -luring
	./installed-pc
	cmake -S src/cmake -B build-cmake >/dev/null || { echo "FAIL: cmake could not configure (find_package(phyr))"; exit 1; }
	cmake --build build-cmake >/dev/null || { echo "FAIL: cmake --build"; exit 1; }
	./build-cmake/installed
	cc -std=c99 src/dlopen.c -o dlopen -ldl
	env -i ./dlopen libphyr.so.0
	phyr-inspect --io-uring $$ > inspect.txt && grep -q "^process $$ (sh)" inspect.txt ||
		{ echo "FAIL: phyr-inspect"; cat inspect.txt; exit 1; }
	echo "phyr-inspect read this shell: $(wc -l < inspect.txt) lines"
	ldd $(dpkg -L libphyr0 | grep "libphyr.so.0$") | sed "s/^/    /"

	dpkg --purge phyr-inspect libphyr-dev libphyr0 >/dev/null
	if dpkg-query -W libphyr0 libphyr-dev phyr-inspect >/dev/null 2>&1; then
		echo "FAIL: dpkg still knows the packages after purging them"; exit 1
	fi
	listing > /phyr/after
	if ! diff /phyr/before /phyr/after; then
		echo "FAIL: files left after purging the packages (above)"; exit 1
	fi
	echo "purged: nothing left"
'
echo "clean root: passed ($(( $(date +%s) - start )) s)"
