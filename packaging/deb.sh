#!/bin/sh
# SPDX-License-Identifier: MIT
# Debian packages of what `make install` installs, with dpkg-deb:
#
#   libphyr0      the shared library (shlibs, symbols, the ldconfig trigger)
#   libphyr-dev   the header, the libphyr.so link, phyr.pc, the CMake package,
#                 the man pages of sections 3 and 7
#   phyr-inspect  the tool and its man page
#
#   sh packaging/deb.sh OUTDIR VERSION        (make deb)
set -eu
umask 022
out=$1 version=$2
here=$(cd "$(dirname "$0")/.." && pwd)
revision=1
arch=$(dpkg --print-architecture)
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)
maintainer="libphyr developers <libphyr@lists.invalid>"
homepage="https://github.com/libphyr/libphyr"
work=$(mktemp -d /tmp/phyr-deb.XXXXXX)
trap 'rm -rf "$work"' EXIT

root=$work/root
make -C "$here" --no-print-directory install DESTDIR="$root" PREFIX=/usr LIBDIR=/usr/lib/$multiarch >/dev/null
lib=usr/lib/$multiarch

# Debian ships stripped binaries (the debug symbols would be a -dbgsym package).
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$root/$lib/libphyr.so.$version"
chmod 644 "$root/$lib/libphyr.so.$version"  # Debian's shared libraries are not executable
strip --remove-section=.comment --remove-section=.note "$root/usr/bin/phyr-inspect"
gzip -9n "$root"/usr/share/man/man*/*

# The oldest glibc the library asks for, by the symbol versions it uses.
glibc_of() {
	objdump -T "$1" | sed -n 's/.*GLIBC_\([0-9.]*\).*/\1/p' | sort -uV | tail -n 1
}

# package NAME SECTION DESCRIPTION DEPENDS FILES...
package() {
	name=$1 section=$2 summary=$3 depends=$4; shift 4
	dir=$work/$name
	mkdir -p "$dir/DEBIAN" "$dir/usr/share/doc/$name"
	for f in "$@"; do
		mkdir -p "$dir/$(dirname "$f")"
		cp -a "$root/$f" "$dir/$f"
	done
	sed "s/@NAME@/$name/g" "$here/packaging/copyright" > "$dir/usr/share/doc/$name/copyright"
	printf 'libphyr (%s-%s) unstable; urgency=medium\n\n  * Release %s (README.md says what changed).\n\n -- %s  %s\n' \
		"$version" "$revision" "$version" "$maintainer" "$(date -R -u -d @"$epoch")" |
		gzip -9n > "$dir/usr/share/doc/$name/changelog.Debian.gz"
	size=$(du -sk --exclude=DEBIAN "$dir" | cut -f1)
	{
		echo "Package: $name"
		echo "Source: libphyr"
		echo "Version: $version-$revision"
		echo "Architecture: $arch"
		echo "Maintainer: $maintainer"
		echo "Installed-Size: $size"
		[ -z "$depends" ] || echo "Depends: $depends"
		[ "$name" != libphyr0 ] || echo "Multi-Arch: same"
		echo "Section: $section"
		echo "Priority: optional"
		echo "Homepage: $homepage"
		echo "Description: $summary"
		cat "$here/packaging/$name.description"
	} > "$dir/DEBIAN/control"
	(cd "$dir" && find usr -type f -exec md5sum {} + | sort -k2 > DEBIAN/md5sums)
	find "$dir" -type d -exec chmod 755 {} +
	mkdir -p "$out"
	dpkg-deb --root-owner-group -Zxz --build "$dir" "$out/${name}_${version}-${revision}_${arch}.deb" >/dev/null
	echo "$out/${name}_${version}-${revision}_${arch}.deb"
}

# Only this version's packages in $out: check-packages installs all it finds.
mkdir -p "$out"
rm -f "$out"/libphyr0_*.deb "$out"/libphyr-dev_*.deb "$out"/phyr-inspect_*.deb
libc=$(glibc_of "$root/$lib/libphyr.so.$version")
# The changelog's date, the same for the same sources: SOURCE_DATE_EPOCH, or
# this checkout's last commit, or the header's time.
if [ -n "${SOURCE_DATE_EPOCH:-}" ]; then
	epoch=$SOURCE_DATE_EPOCH
elif [ -e "$here/.git" ]; then
	epoch=$(git -C "$here" log -1 --format=%ct)
else
	epoch=$(stat -c %Y "$here/include/phyr.h")
fi

# libphyr0: shlibs and symbols, so packages built against it depend on it right.
mkdir -p "$work/libphyr0/DEBIAN"
echo "libphyr 0 libphyr0 (>= $version)" > "$work/libphyr0/DEBIAN/shlibs"
{
	echo "libphyr.so.0 libphyr0 #MINVER#"
	echo "* Build-Depends-Package: libphyr-dev"
	# name@NODE and the release that brought it: node PHYR_X.Y came in X.Y.0
	# (the version nodes themselves are listed too).
	nm -D --defined-only --with-symbol-versions "$root/$lib/libphyr.so.$version" |
		awk '$2 ~ /^[A-Z]$/ { print $2, $3 }' | LC_ALL=C sort -k2 | while read -r kind sym; do
			name=${sym%%@*} node=${sym##*@}
			[ "$kind" = A ] && name=$node
			echo " $name@$node ${node#PHYR_}.0"
		done
} > "$work/libphyr0/DEBIAN/symbols"
echo "activate-noawait ldconfig" > "$work/libphyr0/DEBIAN/triggers"
chmod 644 "$work/libphyr0/DEBIAN/shlibs" "$work/libphyr0/DEBIAN/symbols" "$work/libphyr0/DEBIAN/triggers"
package libphyr0 libs "pinned physical memory ranges and io_uring buffers (library)" "libc6 (>= $libc)" \
	"$lib/libphyr.so.0" "$lib/libphyr.so.$version"

mkdir -p "$work/libphyr-dev/usr/share/doc/libphyr-dev"
gzip -9n < "$root/usr/share/doc/libphyr/README.md" > "$work/libphyr-dev/usr/share/doc/libphyr-dev/README.md.gz"
package libphyr-dev libdevel "pinned physical memory ranges and io_uring buffers (development files)" \
	"libphyr0 (= $version-$revision)" \
	usr/include/phyr.h "$lib/libphyr.so" "$lib/pkgconfig/phyr.pc" "$lib/cmake/phyr/phyrConfig.cmake" \
	"$lib/cmake/phyr/phyrConfigVersion.cmake" $(cd "$root" && ls usr/share/man/man3/* usr/share/man/man7/*)

tooldeps=$(objdump -p "$root/usr/bin/phyr-inspect" | awk '/NEEDED/ { print $2 }')
package phyr-inspect utils "how a process's memory is backed, and what its io_uring buffers cost" \
	"$([ -z "$tooldeps" ] || echo "libc6 (>= $(glibc_of "$root/usr/bin/phyr-inspect"))")" \
	usr/bin/phyr-inspect usr/share/man/man1/phyr-inspect.1.gz
