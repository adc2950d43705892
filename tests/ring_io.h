/* SPDX-License-Identifier: MIT */
/*
 * ring_io.h - io_uring helpers for the ring tests: files with a known
 * pattern, and fixed-buffer I/O that finds its buffer with ring_reg_lookup()
 * and splits where a request would cross into the next buffer.
 */
#ifndef PHYR_TEST_RING_IO_H
#define PHYR_TEST_RING_IO_H

#include "harness.h"

#include <liburing.h>
#include <dirent.h>
#include <sys/utsname.h>

#define QD 32
#define CHUNK (256 * KiB)

/* The pattern: every 8-byte word holds its file offset mixed with a seed. */
static inline uint64_t pattern_word(uint64_t off, uint64_t seed)
{
	return (off * 0x9e3779b97f4a7c15ULL) ^ seed;
}

static inline void fill_pattern(char *p, size_t len, uint64_t file_off, uint64_t seed)
{
	for (size_t i = 0; i + 8 <= len; i += 8) {
		uint64_t w = pattern_word(file_off + i, seed);
		memcpy(p + i, &w, 8);
	}
}

/* First differing offset of p against the pattern, or -1. */
static inline long check_pattern(const char *p, size_t len, uint64_t file_off, uint64_t seed)
{
	for (size_t i = 0; i + 8 <= len; i += 8) {
		uint64_t w;
		memcpy(&w, p + i, 8);
		if (w != pattern_word(file_off + i, seed))
			return (long)i;
	}
	return -1;
}

/* A file of len bytes of pattern `seed`, unlinked; returns its fd. */
static inline int pattern_file(size_t len, uint64_t seed)
{
	char path[] = "/var/tmp/phyr-test-XXXXXX";
	int fd = mkstemp(path);
	CHECK(fd >= 0, "mkstemp: %s", strerror(errno));
	unlink(path);
	char *chunk = malloc(1 * MiB);
	for (size_t off = 0; off < len; off += 1 * MiB) {
		size_t n = len - off < 1 * MiB ? len - off : 1 * MiB;
		fill_pattern(chunk, n, off, seed);
		CHECK(pwrite(fd, chunk, n, (off_t)off) == (ssize_t)n, "pwrite: %s", strerror(errno));
	}
	free(chunk);
	return fd;
}

static inline void reap(struct io_uring *ring, int *inflight)
{
	while (*inflight > 0) {
		struct io_uring_cqe *cqe;
		int rc = io_uring_wait_cqe(ring, &cqe);
		CHECK(rc == 0, "io_uring_wait_cqe: %s", strerror(-rc));
		CHECK(cqe->res == (int)cqe->user_data, "fixed I/O of %llu bytes returned %d (%s)",
		      (unsigned long long)cqe->user_data, cqe->res, cqe->res < 0 ? strerror(-cqe->res) : "short");
		io_uring_cqe_seen(ring, cqe);
		(*inflight)--;
	}
}

/*
 * READ_FIXED (or WRITE_FIXED) of [p, p+len) at file offset `off`, in chunks
 * of up to `chunk` bytes, each split where it leaves its registered buffer.
 * Returns how many requests crossed a buffer boundary and had to be split.
 */
static inline int fixed_io(struct io_uring *ring, ring_reg_t *reg, int fd, char *p, size_t len, uint64_t off,
			   int write, size_t chunk)
{
	size_t done = 0;
	int inflight = 0, splits = 0;
	while (done < len) {
		size_t want = len - done < chunk ? len - done : chunk;
		unsigned idx;
		size_t avail;
		CHECK_RC(ring_reg_lookup(reg, p + done, want, &idx, &avail), 0);
		CHECK(avail > 0 && avail <= want, "avail %zu for %zu", avail, want);
		if (avail < want)
			splits++;
		struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
		if (!sqe) {
			io_uring_submit(ring);
			reap(ring, &inflight);
			sqe = io_uring_get_sqe(ring);
		}
		if (write)
			io_uring_prep_write_fixed(sqe, fd, p + done, (unsigned)avail, off + done, (int)idx);
		else
			io_uring_prep_read_fixed(sqe, fd, p + done, (unsigned)avail, off + done, (int)idx);
		sqe->user_data = avail;
		inflight++;
		done += avail;
		if (inflight == QD) {
			io_uring_submit(ring);
			reap(ring, &inflight);
		}
	}
	io_uring_submit(ring);
	reap(ring, &inflight);
	return splits;
}

/* Fixed reads of a new pattern file (seed) into [p, p+len) through reg, in
 * four requests or so, and the data checked. */
static inline void read_checked(struct io_uring *ring, ring_reg_t *reg, char *p, size_t len, uint64_t seed,
				const char *what)
{
	int in = pattern_file(len, seed);
	memset(p, 0, len);
	fixed_io(ring, reg, in, p, len, 0, 0, len >= 4 * PAGE ? len / 4 : len);
	CHECK(check_pattern(p, len, 0, seed) < 0, "%s: the fixed read", what);
	close(in);
}

/*
 * The one way the tests make a ring: a ring test needs io_uring, and skips
 * saying why when this process may not have one (kernel.io_uring_disabled,
 * a seccomp filter, a kernel without io_uring).
 */
static inline void ring_or_skip(struct io_uring *ring, unsigned entries)
{
	int rc = io_uring_queue_init(entries, ring, 0);
	if (rc == 0)
		return;
	char why[160] = "";
	FILE *f = fopen("/proc/sys/kernel/io_uring_disabled", "r");
	int disabled = 0;
	if (f && fscanf(f, "%d", &disabled) == 1 && disabled)
		snprintf(why, sizeof why, " (kernel.io_uring_disabled is %d)", disabled);
	if (f)
		fclose(f);
	if (!why[0] && (rc == -EPERM || rc == -ENOSYS || rc == -EACCES))
		snprintf(why, sizeof why, " (denied: a seccomp filter, or no io_uring in this kernel)");
	skip("io_uring_queue_init: %s%s: this test needs io_uring", strerror(-rc), why);
}

/*
 * The buffers the kernel holds for a ring, as /proc/self/fdinfo lists them
 * ("UserBufs:\tN" slots, then "i: 0xaddr/len" per buffer; an empty slot is
 * "<none>", or "0xffffffffffffffff/1" on 6.1): calls fn for each buffer and
 * returns the table's size (0: no table).
 */
static inline int fdinfo_each_buf(int ring_fd, void (*fn)(uint64_t addr, uint64_t len, void *arg), void *arg)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/self/fdinfo/%d", ring_fd);
	/* The kernel lists the slots only when it gets the ring's lock at once
	 * (mutex_trylock: another process using or reading this ring may hold
	 * it; before 6.16 it still prints the count, since then no table line
	 * at all): read the whole file again until it did. */
	for (int tries = 0;; tries++) {
		FILE *f = fopen(path, "r");
		CHECK(f != NULL, "open %s: %s", path, strerror(errno));
		size_t cap = 1 << 16, len = 0, got;
		char *text = malloc(cap);
		CHECK(text, "malloc");
		while ((got = fread(text + len, 1, cap - 1 - len, f)) > 0)
			if ((len += got) == cap - 1)
				CHECK((text = realloc(text, cap *= 2)) != NULL, "realloc");
		text[len] = 0;
		fclose(f);
		int nslots = 0;
		char *bufs = strstr(text, "UserBufs:");
		if (!bufs && tries < 2000) {
			free(text);
			usleep(1000);
			continue;
		}
		CHECK(bufs && sscanf(bufs, "UserBufs: %d", &nslots) == 1, "no UserBufs line in %s", path);
		char *line = strchr(bufs, '\n');
		unsigned first;
		int listed = line && sscanf(line + 1, " %u:", &first) == 1;
		if (nslots > 0 && !listed && tries < 2000) {
			free(text);
			usleep(1000);
			continue;
		}
		CHECK(nslots == 0 || listed, "%s never listed its %d slots", path, nslots);
		while (line && *++line) {
			unsigned idx, blen;
			unsigned long long addr;
			if (sscanf(line, " %u: 0x%llx/%u", &idx, &addr, &blen) == 3) {
				if (blen > 0 && addr != ~0ULL)
					fn(addr, blen, arg);
			} else if (sscanf(line, " %u: <none>", &idx) != 1) {
				break;
			}
			line = strchr(line, '\n');
		}
		free(text);
		return nslots;
	}
}

static inline void count_buf(uint64_t addr, uint64_t len, void *arg)
{
	(void)addr, (void)len;
	++*(int *)arg;
}

/* How many slots of the ring's table hold a buffer; the table's size in
 * *slots if asked. */
static inline int fdinfo_bufs(int ring_fd, int *slots)
{
	int held = 0, n = fdinfo_each_buf(ring_fd, count_buf, &held);
	if (slots)
		*slots = n;
	return held;
}

static inline int ring_has_no_table(struct io_uring *ring);

/* The io_uring descriptors this process has open (the program's rings,
 * libphyr's duplicates of them, its holder rings): their number, and with
 * fds, all of them in fds[], sorted (more than max fails the test). */
static inline int io_uring_fds(int *fds, int max)
{
	DIR *d = opendir("/proc/self/fd");
	CHECK(d != NULL, "opendir /proc/self/fd: %s", strerror(errno));
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		char target[64];
		ssize_t len = readlinkat(dirfd(d), e->d_name, target, sizeof target - 1);
		if (len <= 0 || e->d_name[0] == '.')
			continue;
		target[len] = 0;
		if (strcmp(target, "anon_inode:[io_uring]") != 0)
			continue;
		if (n < max)
			fds[n] = atoi(e->d_name);
		n++;
	}
	closedir(d);
	CHECK(fds == NULL || n <= max, "%d io_uring descriptors, room for %d", n, max);
	for (int i = 1; i < n && fds; i++)
		for (int j = i; j > 0 && fds[j - 1] > fds[j]; j--) {
			int t = fds[j];
			fds[j] = fds[j - 1];
			fds[j - 1] = t;
		}
	return n;
}

static inline int io_uring_fd_count(void)
{
	return io_uring_fds(NULL, 0);
}

/*
 * Ring fd numbers come back after io_uring_queue_exit: a new ring behind an
 * old number must get a table of its own -- the buffers in it, as its fdinfo
 * lists them, and fixed reads through it right -- while the old
 * registration stays valid until it is unregistered.
 */
static inline void check_ring_fd_reuse(uint64_t seed)
{
	char *p = base_alloc(16 * PAGE);
	phyr_t *r;
	CHECK_RC(phyr_pin(p, 16 * PAGE, PHYR_PIN_WRITE, &r), 0);
	struct io_uring a, b;
	CHECK_RC(io_uring_queue_init(8, &a, 0), 0);
	int fd_a = a.ring_fd;
	ring_reg_t *ra, *rb;
	CHECK_RC(ring_register_ranges(&a, &r, 1, 0, &ra), 0);
	io_uring_queue_exit(&a); /* without unregistering first */
	CHECK_RC(io_uring_queue_init(8, &b, 0), 0);
	if (b.ring_fd != fd_a)
		fprintf(stderr, "note: the new ring got fd %d, not %d: the reuse case is weaker\n", b.ring_fd, fd_a);
	CHECK_RC(ring_register_ranges(&b, &r, 1, 0, &rb), 0);
	CHECK(fdinfo_bufs(b.ring_fd, NULL) == 1, "the new ring holds %d buffers", fdinfo_bufs(b.ring_fd, NULL));
	int in = pattern_file(16 * PAGE, seed);
	fixed_io(&b, rb, in, p, 16 * PAGE, 0, 0, 5 * PAGE);
	CHECK(check_pattern(p, 16 * PAGE, 0, seed) < 0, "I/O on the new ring read wrong data");
	CHECK_RC(ring_unregister_ranges(ra), 0);
	CHECK_RC(ring_unregister_ranges(rb), 0);
	CHECK(ring_has_no_table(&b), "table left behind on the new ring");
	io_uring_queue_exit(&b);
	CHECK_RC(phyr_unpin(r), 0);
	CHECK(vmlck_bytes() == 0, "VmLck %" PRIu64, vmlck_bytes());
	close(in);
	munmap(p, 16 * PAGE);
}

/*
 * Whether the running kernel holds a huge-page buffer as one entry per huge
 * page, by its release (independent of libphyr's own probe, which the tests
 * check against it): buffers of several huge pages since 6.11, a buffer
 * within one huge page since 6.3, none before.
 */
static inline int kernel_at_least(int major, int minor)
{
	struct utsname u;
	int a = 0, b = 0;
	CHECK(uname(&u) == 0 && sscanf(u.release, "%d.%d", &a, &b) == 2, "uname");
	return a > major || (a == major && b >= minor);
}
#define COALESCES_SEVERAL() (kernel_at_least(6, 11) ? RING_BUF_COALESCED : 0u)
#define COALESCES_ONE() (kernel_at_least(6, 3) ? RING_BUF_COALESCED : 0u)

/* Whether the ring has no buffer table: a foreign registration then works. */
static inline int ring_has_no_table(struct io_uring *ring)
{
	/* Anonymous memory: Linux 6.1 refuses file-backed buffers, and a
	 * static array may share a page with .data. */
	static char *scratch;
	if (!scratch) {
		scratch = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		CHECK(scratch != MAP_FAILED, "mmap: %s", strerror(errno));
	}
	struct iovec iov = { scratch, 4096 };
	int rc = io_uring_register_buffers(ring, &iov, 1);
	if (rc == 0)
		io_uring_unregister_buffers(ring);
	return rc == 0;
}

#endif
