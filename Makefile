# SPDX-License-Identifier: MIT
# libphyr: build, install, test, demo, bench.
#
#   make            the release libphyr.so (Embedded Swift: no Swift runtime) and
#                   phyr-inspect (Embedded Swift too)
#   make install    PREFIX=/usr/local [DESTDIR=...]; make uninstall the same
#   make deb        Debian packages (libphyr0, libphyr-dev, phyr-inspect) into build/deb
#   make dist       the source tarball of HEAD
#   make check      every test: Swift unit tests, C ABI and kernel tests,
#                   the unprivileged and lock-limit tests
#   make test-core  the pure core's unit tests alone
#   make test T=test_ring [CASE=refusals]   one C test against the library
#   make check-kernels  the kernel tests again on Linux 6.1 and 6.12 (qemu, root)
#   make check-packages the Debian packages: lintian, and a clean Debian root (root)
#   make demo       pins a THP buffer with a stray base page, prints segments
#   make bench      ratios against raw mlock, per-page pagemap reads, plain
#                   liburing and the kernel's own /proc text, measured in one run

VERSION  := $(shell sed -n 's/^\#define PHYR_VERSION_\(MAJOR\|MINOR\|PATCH\) \([0-9]*\)/\2/p' include/phyr.h | paste -sd.)
SONAME   := libphyr.so.0
PREFIX   ?= /usr/local
LIBDIR   ?= $(PREFIX)/lib
BINDIR   ?= $(PREFIX)/bin
INCDIR   ?= $(PREFIX)/include
MANDIR   ?= $(PREFIX)/share/man
SWIFT    ?= swift
CC       ?= cc
CXX      ?= c++

BUILD    := build
# The library builds in Embedded Swift, in a folder of its own (the unit
# tests build the same sources as ordinary Swift in .build).
LIBRARY  := .build-embedded/release/libphyr.so
# phyr-inspect too: Embedded Swift, NEEDED libc and libm only.
TOOL     := .build-embedded/release/phyr-inspect
STAGE    := $(CURDIR)/$(BUILD)/stage
# Tests and examples build exactly as a user does: against the staged
# install, through pkg-config.
PKGENV   := PKG_CONFIG_PATH=$(STAGE)/lib/pkgconfig
PHYR_CFLAGS = $(shell $(PKGENV) pkg-config --cflags phyr)
PHYR_LIBS   = $(shell $(PKGENV) pkg-config --libs phyr) -Wl,-rpath,$(STAGE)/lib

# Embedded Swift brings no runtime library but the Unicode tables String
# needs (from the toolchain's own folder); -z defs makes a missing symbol a
# link error, not a failure at run time.
# Where the toolchain keeps its runtime (swiftly's `swift` is a link to
# swiftly itself, so the binary's own path says nothing).
EMBEDDED_LIB = $(shell $(SWIFT) -print-target-info 2>/dev/null | \
	sed -n 's/.*"runtimeResourcePath": "\(.*\)".*/\1/p')/embedded/$(shell uname -m)-unknown-linux-gnu
EMBEDDED_LINK = -Xlinker -z -Xlinker defs -Xlinker -z -Xlinker relro -Xlinker -z -Xlinker now \
	-Xlinker --gc-sections -Xlinker --icf=all \
	-Xlinker -L$(EMBEDDED_LIB) -Xlinker -lswiftUnicodeDataTables
SWIFT_LINK = -Xlinker -soname=$(SONAME) -Xlinker --version-script=$(CURDIR)/src/phyr.map \
	-Xlinker -z -Xlinker nodelete $(EMBEDDED_LINK)

SOURCES  := $(shell find Sources -name '*.swift' -o -name '*.c' -o -name '*.h') Package.swift src/phyr.map include/phyr.h

TESTS_C  := $(patsubst tests/%.c,$(BUILD)/tests/%,$(wildcard tests/*.c))
TEST_CFLAGS := -std=gnu11 -O2 -g -Wall -Wextra -Werror -pthread

.PHONY: all lib tool deps-build deps-packages check-packages install install-lib uninstall dist deb stage stage-lib test test-core check-clean-root deps deps-kernels hugepages check check-swift check-c check-kernels demo bench clean

all: lib tool

lib: deps-build $(LIBRARY)

# Building needs Swift 6.3 with its Embedded standard library; installing
# what was built does not (the check runs only where something is built).
check_toolchain = v=$$($(SWIFT) --version 2>/dev/null | sed -n 's/.*Swift version \([0-9]*\)\.\([0-9]*\).*/\1 \2/p'); \
	set -- $$v; \
	if [ -z "$$v" ] || [ "$$1" -lt 6 ] || { [ "$$1" = 6 ] && [ "$$2" -lt 3 ]; }; then \
	  echo "libphyr builds with Swift 6.3 or later ($(SWIFT): $${v:-not found}): put the toolchain's bin folder on" \
	    "PATH or set SWIFT=/path/to/swift, or install the Debian packages (make deb, on a machine that has it)"; exit 1; \
	fi; \
	[ -f "$(EMBEDDED_LIB)/libswiftUnicodeDataTables.a" ] || { \
	  echo "$(SWIFT) has no Embedded Swift standard library for this machine ($(EMBEDDED_LIB))"; exit 1; }

tool: deps-build $(TOOL)

$(LIBRARY): $(SOURCES)
	@$(check_toolchain)
	PHYR_EMBEDDED=1 $(SWIFT) build -c release --product phyr --scratch-path .build-embedded --disable-local-rpath $(SWIFT_LINK)
	@# SwiftPM leaves a product it did not need to relink as it was: newer
	@# than the sources now, or every make would ask it again.
	@touch $@

# phyr-inspect reads other processes through the kernel layer and needs no
# libphyr of its own; like the library, it needs only libc and libm.
$(TOOL): $(SOURCES)
	@$(check_toolchain)
	PHYR_EMBEDDED=1 $(SWIFT) build -c release --product phyr-inspect --scratch-path .build-embedded --disable-local-rpath \
		$(EMBEDDED_LINK)
	@touch $@

# DESTDIR-aware install: the real file, the soname and dev links, the
# header, the pkg-config file (install-lib); phyr-inspect, the man pages and
# the docs.
install: install-lib tool
	install -d $(DESTDIR)$(BINDIR)
	install -m 755 $(TOOL) $(DESTDIR)$(BINDIR)/phyr-inspect
	strip $(DESTDIR)$(BINDIR)/phyr-inspect
	install -d $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man3 $(DESTDIR)$(MANDIR)/man7
	install -m 644 man/*.1 $(DESTDIR)$(MANDIR)/man1/
	install -m 644 man/*.3 $(DESTDIR)$(MANDIR)/man3/
	install -m 644 man/*.7 $(DESTDIR)$(MANDIR)/man7/
	install -d $(DESTDIR)$(PREFIX)/share/doc/libphyr
	install -m 644 LICENSE README.md $(DESTDIR)$(PREFIX)/share/doc/libphyr/

install-lib: lib
	install -d $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(LIBDIR)/cmake/phyr $(DESTDIR)$(INCDIR)
	install -m 755 $(LIBRARY) $(DESTDIR)$(LIBDIR)/libphyr.so.$(VERSION)
	strip --strip-unneeded $(DESTDIR)$(LIBDIR)/libphyr.so.$(VERSION)
	ln -sf libphyr.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libphyr.so
	install -m 644 include/phyr.h $(DESTDIR)$(INCDIR)/phyr.h
	for f in pkgconfig/phyr.pc.in cmake/phyrConfig.cmake.in cmake/phyrConfigVersion.cmake.in; do \
	  out=$$(case $$f in pkgconfig/*) echo pkgconfig;; *) echo cmake/phyr;; esac)/$$(basename $$f .in); \
	  sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@INCLUDEDIR@|$(INCDIR)|' \
	      -e 's|@VERSION@|$(VERSION)|' -e 's|@MAJOR@|$(firstword $(subst ., ,$(VERSION)))|' \
	      $$f > $(DESTDIR)$(LIBDIR)/$$out; chmod 644 $(DESTDIR)$(LIBDIR)/$$out; \
	done

# Exactly what install writes, for uninstall (and the folders only libphyr uses).
INSTALLED = $(LIBDIR)/libphyr.so.$(VERSION) $(LIBDIR)/$(SONAME) $(LIBDIR)/libphyr.so $(INCDIR)/phyr.h \
	$(LIBDIR)/pkgconfig/phyr.pc $(LIBDIR)/cmake/phyr/phyrConfig.cmake $(LIBDIR)/cmake/phyr/phyrConfigVersion.cmake \
	$(BINDIR)/phyr-inspect $(PREFIX)/share/doc/libphyr/LICENSE $(PREFIX)/share/doc/libphyr/README.md \
	$(patsubst man/%,$(MANDIR)/man1/%,$(wildcard man/*.1)) $(patsubst man/%,$(MANDIR)/man3/%,$(wildcard man/*.3)) \
	$(patsubst man/%,$(MANDIR)/man7/%,$(wildcard man/*.7))

# The folders install may have made, deepest first: each goes if it is empty.
INSTALL_DIRS = $(LIBDIR)/cmake/phyr $(LIBDIR)/cmake $(LIBDIR)/pkgconfig $(LIBDIR) $(INCDIR) $(BINDIR) \
	$(MANDIR)/man1 $(MANDIR)/man3 $(MANDIR)/man7 $(MANDIR) $(PREFIX)/share/doc/libphyr $(PREFIX)/share/doc \
	$(PREFIX)/share $(PREFIX)

uninstall:
	rm -f $(addprefix $(DESTDIR),$(INSTALLED))
	@for d in $(addprefix $(DESTDIR),$(INSTALL_DIRS)); do rmdir "$$d" 2>/dev/null || true; done

# The source tarball of what is committed: build/libphyr-VERSION.tar.gz, from
# a clean tree only (the tarball is HEAD; its name must be HEAD's version).
dist:
	@[ -z "$$(git status --porcelain --untracked-files=no)" ] || { echo "make dist: commit or stash your changes first"; exit 1; }
	@mkdir -p $(BUILD)
	git archive --format=tar.gz --prefix=libphyr-$(VERSION)/ -o $(BUILD)/libphyr-$(VERSION).tar.gz HEAD
	@echo "$(BUILD)/libphyr-$(VERSION).tar.gz"

# Debian packages into build/deb: libphyr0, libphyr-dev, phyr-inspect.
deb: lib tool
	sh packaging/deb.sh $(BUILD)/deb $(VERSION)

stage: lib tool
	$(MAKE) --no-print-directory install PREFIX=$(STAGE) DESTDIR= >/dev/null

# The library alone in the stage, for the C tests (make test).
stage-lib: lib
	$(MAKE) --no-print-directory install-lib PREFIX=$(STAGE) DESTDIR= >/dev/null

# Installs the Debian packages the shell variable "missing" names when we are root, and
# otherwise names them and fails ($(1) says who needs them).
install_missing = if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "$(1) needs:$$missing -- run: sudo apt-get install -y$$missing"; exit 1; \
	  fi; \
	fi

# What a fresh machine lacks: installed when we are root, named otherwise.
deps: deps-build
	@missing=""; \
	command -v pkg-config >/dev/null || missing="$$missing pkg-config"; \
	[ -x /usr/bin/python3 ] || missing="$$missing python3"; \
	$(call install_missing,libphyr's tests)

# What building the library needs besides Swift: liburing's header (the C
# shim reads the ring's fd out of struct io_uring; nothing links liburing).
deps-build:
	@missing=""; \
	[ -f /usr/include/liburing.h ] || missing="$$missing liburing-dev"; \
	$(call install_missing,building libphyr)

# hugetlb pages for the hugetlb tests (root only; the tests skip loudly
# without them).  2 MiB pages always, two 1 GiB pages when memory allows.
hugepages:
	@if [ "$$(id -u)" = 0 ]; then \
	  h2=/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages; \
	  h1=/sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages; \
	  [ "$$(cat $$h2)" -ge 64 ] || echo 64 > $$h2 || true; \
	  [ ! -w $$h1 ] || [ "$$(cat $$h1)" -ge 2 ] || echo 2 > $$h1 || true; \
	  echo "hugetlb pages: 2 MiB x $$(cat $$h2), 1 GiB x $$(cat $$h1 2>/dev/null || echo 0)"; \
	else \
	  echo "not root: hugetlb pages are not reserved; hugetlb tests will skip"; \
	fi

$(BUILD)/tests/%: tests/%.c tests/harness.h tests/ring_io.h $(LIBRARY) | stage-lib
	@mkdir -p $(dir $@)
	$(CC) $(TEST_CFLAGS) $(PHYR_CFLAGS) $< -o $@ $(PHYR_LIBS) -luring

check: deps hugepages check-swift check-c

# The packages as a user meets them: lintian finds no error, and in a clean
# Debian 12 root without Swift they install, build and run a program with
# pkg-config and one with CMake, dlopen, phyr-inspect, and purge to nothing.
check-packages: deb deps-packages
	lintian --fail-on error --tag-display-limit 0 $(BUILD)/deb/*.deb
	sh tests/clean_root.sh $(BUILD)/deb
	@# The source tarball builds the library on its own.
	$(MAKE) --no-print-directory dist >/dev/null
	rm -rf $(BUILD)/dist-check && mkdir -p $(BUILD)/dist-check
	tar -xzf $(BUILD)/libphyr-$(VERSION).tar.gz -C $(BUILD)/dist-check
	$(MAKE) -C $(BUILD)/dist-check/libphyr-$(VERSION) --no-print-directory lib >/dev/null
	@echo "make dist: libphyr-$(VERSION).tar.gz builds libphyr.so"
	rm -rf $(BUILD)/dist-check

deps-packages:
	@missing=""; \
	command -v lintian >/dev/null || missing="$$missing lintian"; \
	command -v mmdebstrap >/dev/null || missing="$$missing mmdebstrap"; \
	$(call install_missing,check-packages)

# The inner loops (README: Contributing).  The pure core's tests alone:
test-core:
	$(SWIFT) test --disable-xctest --filter PhyrCoreTests

# One C test program, or one case of it, against the library alone (no
# phyr-inspect, no Swift tests): make test T=test_ring [CASE=refusals]
test: deps stage-lib
	@[ -n "$(T)" ] && [ -f tests/$(T).c ] || { echo "usage: make test T=<tests/*.c name> [CASE=<case>]"; exit 2; }
	@$(MAKE) --no-print-directory $(BUILD)/tests/$(T)
	./$(BUILD)/tests/$(T) $(CASE)

# The Swift tests three times: plain, under the thread sanitizer (the lookup
# index's seqlock, the tables' locks) and under the address sanitizer, each in
# a build folder of its own.  A sanitizer report fails the run.  Leaks are not
# checked: index blocks are never freed by design (a racing lookup may still
# read one), and the test runner's own allocations outlive the tests.
check-swift:
	$(SWIFT) test --disable-xctest
	TSAN_OPTIONS=halt_on_error=1 $(SWIFT) test --disable-xctest --sanitize=thread --scratch-path .build-tsan
	ASAN_OPTIONS=halt_on_error=1:detect_leaks=0 $(SWIFT) test --disable-xctest --sanitize=address --scratch-path .build-asan

check-c: stage $(TESTS_C)
	@STAGE=$(STAGE) CC="$(CC)" CXX="$(CXX)" sh tests/run.sh $(BUILD)/tests

# The tests on the kernels most machines run, each booted under qemu with
# run-on-kernel.sh: Debian 12's 6.1 and Debian 13's 6.12 (the generation RHEL
# 10 runs).  Software emulation is slow; tests/kernels.sh says what runs.
KERNELS ?= 6.1 6.12
RUN_ON_KERNEL ?= $(firstword $(wildcard $(CURDIR)/../shared/tools/run-on-kernel.sh /work/shared/tools/run-on-kernel.sh))
check-kernels: deps deps-kernels stage $(TESTS_C)
	$(SWIFT) build --build-tests
	STAGE=$(STAGE) SWIFT_TESTS=$(CURDIR)/.build/debug/phyrPackageTests.xctest sh tests/kernels.sh $(BUILD)/tests $(KERNELS)

deps-kernels:
	@missing=""; \
	for c in qemu-system-x86_64:qemu-system-x86 busybox:busybox-static cpio:cpio modprobe:kmod mkfs.ext4:e2fsprogs; do \
	  command -v $${c%%:*} >/dev/null || [ -x /sbin/$${c%%:*} ] || missing="$$missing $${c#*:}"; \
	done; \
	$(call install_missing,check-kernels)

demo: deps stage
	@mkdir -p $(BUILD)
	$(CC) -std=gnu11 -O2 -Wall -Wextra $(PHYR_CFLAGS) examples-c/demo.c -o $(BUILD)/demo $(PHYR_LIBS) -luring
	./$(BUILD)/demo

bench: deps stage
	@mkdir -p $(BUILD)
	$(CC) -std=gnu11 -O2 -Wall -Wextra $(PHYR_CFLAGS) bench/bench_pin.c -o $(BUILD)/bench_pin $(PHYR_LIBS)
	$(CC) -std=gnu11 -O2 -Wall -Wextra $(PHYR_CFLAGS) bench/bench_ring.c -o $(BUILD)/bench_ring $(PHYR_LIBS) -luring
	$(CC) -std=gnu11 -O2 -Wall -Wextra $(PHYR_CFLAGS) bench/bench_inspect.c -o $(BUILD)/bench_inspect $(PHYR_LIBS) -luring
	./$(BUILD)/bench_pin
	@echo
	./$(BUILD)/bench_ring
	@echo
	./$(BUILD)/bench_inspect $(STAGE)/bin/phyr-inspect
	@echo
	$(CC) -std=gnu11 -O2 -Wall -Wextra $(PHYR_CFLAGS) bench/bench_numa.c -o $(BUILD)/bench_numa $(PHYR_LIBS)
	./$(BUILD)/bench_numa
	@# Placement needs two nodes: a VM with two (software-emulated: its
	@# times are the VM's, its ratio is what compares).
	@if [ "$$(id -u)" = 0 ] && [ -x "$(RUN_ON_KERNEL)" ]; then \
	  $(MAKE) --no-print-directory deps-kernels >/dev/null && \
	  $(RUN_ON_KERNEL) --numa 2 -C "$(CURDIR)" 6.1 -- ./$(BUILD)/bench_numa pin_node 2>&1 | grep -E '^(\||libphyr)'; \
	else echo "(phyr_pin_node's row needs root and $(RUN_ON_KERNEL))"; fi

clean:
	rm -rf $(BUILD) .build .build-embedded .build-tsan .build-asan
