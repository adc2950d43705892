/* SPDX-License-Identifier: MIT */
/* ring_register_ranges and friends on a fragmented THP buffer: the plan,
 * fixed reads and writes through lookups with the data checked, references,
 * slot reuse, ring fd reuse, and every refusal. */
#include "ring_io.h"

#define BUF (64 * MiB)

/* THP with stray base pages at 10 MiB and 40 MiB. */
static char *fragmented(void)
{
	char *p = thp_alloc(BUF);
	for (uint64_t at = 10 * MiB; at <= 40 * MiB; at += 30 * MiB)
		stray_page(p, at);
	CHECK(huge_bytes_in(p, BUF) == BUF - 4 * MiB, "layout: %" PRIu64 " huge bytes", huge_bytes_in(p, BUF));
	return p;
}

static void plan_and_io(struct io_uring *ring)
{
	char *p = fragmented();
	phyr_t *r;
	CHECK_RC(phyr_pin(p, BUF, PHYR_PIN_WRITE, &r), 0);
	ring_reg_t *reg;
	CHECK_RC(ring_register_ranges(ring, &r, 1, 0, &reg), 0);

	/* huge | base | huge | base | huge, indices ascending with addresses. */
	struct ring_buf b[8];
	CHECK_RC(ring_reg_bufs(reg, b, 8), 5);
	uint64_t want_lo[5] = { 0, 10 * MiB, 12 * MiB, 40 * MiB, 42 * MiB };
	uint64_t want_hi[5] = { 10 * MiB, 12 * MiB, 40 * MiB, 42 * MiB, BUF };
	for (int i = 0; i < 5; i++) {
		int huge = i % 2 == 0;
		CHECK(b[i].addr == U(p + want_lo[i]) && b[i].len == want_hi[i] - want_lo[i],
		      "buffer %d: [+%#" PRIx64 ", +%#" PRIx64 ")", i, b[i].addr - U(p), b[i].addr + b[i].len - U(p));
		CHECK(b[i].page_shift == (huge ? 21u : 12u) && b[i].flags == (huge ? COALESCES_SEVERAL() : 0u),
		      "buffer %d: shift %u flags %#x", i, b[i].page_shift, b[i].flags);
		CHECK(b[i].index == (unsigned)i, "buffer %d has index %u", i, b[i].index);
	}

	/* The caller's handle may go at once: the registration keeps the pin. */
	CHECK_RC(phyr_unpin(r), 0);
	CHECK_LOCKED_EXACTLY(p, BUF, p, p + BUF);

	/* READ_FIXED of a file into the whole buffer, chunks crossing from huge
	 * buffers into base-page ones and back, split by ring_reg_lookup. */
	int in = pattern_file(BUF, 7);
	memset(p, 0, BUF);
	int splits = fixed_io(ring, reg, in, p, BUF, 0, 0, 3 * MiB + 12 * KiB);
	CHECK(splits >= 4, "only %d requests crossed a buffer boundary", splits);
	long bad = check_pattern(p, BUF, 0, 7);
	CHECK(bad < 0, "READ_FIXED data differs at +%#lx", bad);

	/* WRITE_FIXED of new data from the buffer, read back by plain pread. */
	fill_pattern(p, BUF, 0, 99);
	int outfd = pattern_file(BUF, 0);
	fixed_io(ring, reg, outfd, p, BUF, 0, 1, 1 * MiB + 4 * KiB);
	char *back = malloc(BUF);
	CHECK(pread(outfd, back, BUF, 0) == (ssize_t)BUF, "pread back");
	bad = check_pattern(back, BUF, 0, 99);
	CHECK(bad < 0, "WRITE_FIXED data differs at +%#lx", bad);
	free(back);

	/* Lookups: avail stops at the buffer's end; outside is -ENOENT. */
	unsigned idx;
	size_t avail;
	CHECK_RC(ring_reg_lookup(reg, p + 10 * MiB - 100, 4096, &idx, &avail), 0);
	CHECK(idx == 0 && avail == 100, "lookup at the edge: index %u avail %zu", idx, avail);
	CHECK_RC(ring_reg_lookup(reg, p + 10 * MiB, 4096, &idx, &avail), 0);
	CHECK(idx == 1 && avail == 4096, "lookup in the base buffer: index %u avail %zu", idx, avail);
	CHECK_RC(ring_reg_lookup(reg, p + BUF, 1, &idx, &avail), -ENOENT);
	CHECK_RC(ring_reg_lookup(reg, p - 1, 1, &idx, &avail), -ENOENT);

	CHECK_RC(ring_unregister_ranges(reg), 0);
	CHECK_NOTHING_LOCKED(p, BUF);
	CHECK(huge_bytes_in(p, BUF) == BUF - 4 * MiB, "registration split a huge mapping");
	CHECK(ring_has_no_table(ring), "the ring's table outlived its last registration");
	CHECK_RC(ring_unregister_ranges(reg), -EINVAL);
	CHECK_RC(ring_reg_lookup(reg, p, 1, &idx, &avail), -EINVAL);
	CHECK_RC(ring_reg_bufs(reg, b, 8), -EINVAL);
	close(in);
	close(outfd);
	munmap(p, BUF);
}

/* Overlapping and touching ranges of one backing merge into one buffer. */
static void ranges_merge(struct io_uring *ring)
{
	char *p = thp_alloc(16 * MiB);
	phyr_t *r[3];
	CHECK_RC(phyr_pin(p + 1 * MiB, 4 * MiB, PHYR_PIN_WRITE, &r[0]), 0);
	CHECK_RC(phyr_pin(p + 3 * MiB, 4 * MiB, PHYR_PIN_WRITE, &r[1]), 0);
	CHECK_RC(phyr_pin(p + 7 * MiB, 1 * MiB, PHYR_PIN_WRITE, &r[2]), 0);
	ring_reg_t *reg;
	CHECK_RC(ring_register_ranges(ring, r, 3, 0, &reg), 0);
	struct ring_buf b[4];
	CHECK_RC(ring_reg_bufs(reg, b, 4), 1);
	CHECK(b[0].addr == U(p + 1 * MiB) && b[0].len == 7 * MiB && b[0].flags == COALESCES_SEVERAL(),
	      "merged buffer [+%#" PRIx64 ", +%#" PRIx64 ")", b[0].addr - U(p), b[0].len);
	for (int i = 0; i < 3; i++)
		CHECK_RC(phyr_unpin(r[i]), 0);
	CHECK_LOCKED_EXACTLY(p, 16 * MiB, p, p + 8 * MiB);
	CHECK_RC(ring_unregister_ranges(reg), 0);
	CHECK_NOTHING_LOCKED(p, 16 * MiB);
	munmap(p, 16 * MiB);
}

/* Registrations share the table and reuse freed slots. */
static void slots_are_shared_and_reused(struct io_uring *ring)
{
	char *p = base_alloc(64 * PAGE);
	phyr_t *r[3];
	for (int i = 0; i < 3; i++)
		CHECK_RC(phyr_pin(p + 8 * i * PAGE, PAGE, 0, &r[i]), 0);
	ring_reg_t *a, *b, *c;
	struct ring_buf buf;
	CHECK_RC(ring_register_ranges(ring, &r[0], 1, 0, &a), 0);
	CHECK_RC(ring_register_ranges(ring, &r[1], 1, 0, &b), 0);
	CHECK(ring_reg_bufs(b, &buf, 1) == 1 && buf.index == 1, "second registration got slot %u", buf.index);
	CHECK_RC(ring_unregister_ranges(a), 0);
	CHECK_RC(ring_register_ranges(ring, &r[2], 1, 0, &c), 0);
	CHECK(ring_reg_bufs(c, &buf, 1) == 1 && buf.index == 0, "freed slot 0 not reused: got %u", buf.index);
	CHECK_RC(ring_unregister_ranges(b), 0);
	CHECK_RC(ring_unregister_ranges(c), 0);
	for (int i = 0; i < 3; i++)
		CHECK_RC(phyr_unpin(r[i]), 0);
	CHECK(ring_has_no_table(ring), "table left behind");
	munmap(p, 64 * PAGE);
}

static void refusals(struct io_uring *ring)
{
	char *p = base_alloc(64 * KiB);
	phyr_t *r, *ro, *gone;
	ring_reg_t *reg = (ring_reg_t *)0x1;
	CHECK_RC(phyr_pin(p, 64 * KiB, 0, &r), 0);
	CHECK_RC(ring_register_ranges(NULL, &r, 1, 0, &reg), -EINVAL);
	CHECK_RC(ring_register_ranges(ring, NULL, 1, 0, &reg), -EINVAL);
	CHECK_RC(ring_register_ranges(ring, &r, 0, 0, &reg), -EINVAL);
	CHECK_RC(ring_register_ranges(ring, &r, 1, 1, &reg), -EINVAL);
	CHECK_RC(ring_register_ranges(ring, &r, 1, 0, NULL), -EINVAL);
	CHECK_RC(phyr_pin(p, 4096, 0, &gone), 0);
	CHECK_RC(phyr_unpin(gone), 0);
	phyr_t *two[2] = { r, gone };
	CHECK_RC(ring_register_ranges(ring, two, 2, 0, &reg), -EINVAL);
	CHECK(strstr(phyr_last_error(), "ranges[1]"), "message: %s", phyr_last_error());
	CHECK(reg == (ring_reg_t *)0x1, "a failed registration wrote *out");

	/* Read-only memory: io_uring pins for writing. */
	char *rop = base_alloc(64 * KiB);
	CHECK(mprotect(rop, 64 * KiB, PROT_READ) == 0, "mprotect");
	CHECK_RC(phyr_pin(rop, 64 * KiB, 0, &ro), 0);
	CHECK_RC(ring_register_ranges(ring, &ro, 1, 0, &reg), -EACCES);
	CHECK(strstr(phyr_last_error(), "read-only"), "message: %s", phyr_last_error());
	phyr_t *mixed[2] = { r, ro };
	CHECK_RC(ring_register_ranges(ring, mixed, 2, 0, &reg), -EACCES);
	CHECK_RC(phyr_unpin(ro), 0);

	/* Pinned for writing, made read-only since: the registration says so
	 * instead of passing on the kernel's EFAULT. */
	char *later = base_alloc(64 * KiB);
	phyr_t *w;
	CHECK_RC(phyr_pin(later, 64 * KiB, PHYR_PIN_WRITE, &w), 0);
	CHECK(mprotect(later + 16 * KiB, 16 * KiB, PROT_READ) == 0, "mprotect");
	CHECK_RC(ring_register_ranges(ring, &w, 1, 0, &reg), -EACCES);
	CHECK(strstr(phyr_last_error(), "read-only"), "message: %s", phyr_last_error());
	CHECK(mprotect(later, 64 * KiB, PROT_NONE) == 0 && munmap(later, 64 * KiB) == 0, "munmap");
	CHECK_RC(ring_register_ranges(ring, &w, 1, 0, &reg), -EFAULT);
	CHECK(strstr(phyr_last_error(), "no longer mapped"), "message: %s", phyr_last_error());
	CHECK_RC(phyr_unpin(w), 0);

	/* [vvar]: no folio behind it. */
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	uint64_t lo = 0, hi = 0;
	while (fgets(line, sizeof line, f))
		if (strstr(line, "[vvar]\n"))
			sscanf(line, "%" SCNx64 "-%" SCNx64, &lo, &hi);
	fclose(f);
	if (lo) {
		phyr_t *v;
		CHECK_RC(phyr_pin((void *)(uintptr_t)lo, hi - lo, 0, &v), 0);
		CHECK_RC(ring_register_ranges(ring, &v, 1, 0, &reg), -EOPNOTSUPP);
		CHECK(strstr(phyr_last_error(), "no folio"), "message: %s", phyr_last_error());
		CHECK_RC(phyr_unpin(v), 0);
	} else {
		skip_part("no [vvar] mapping: memory with no folio (-EOPNOTSUPP) is unchecked");
	}
	CHECK(ring_has_no_table(ring), "a refused registration left a table");

	/* A table someone else registered. */
	struct iovec iov = { p, 4096 };
	CHECK_RC(io_uring_register_buffers(ring, &iov, 1), 0);
	CHECK_RC(ring_register_ranges(ring, &r, 1, 0, &reg), -EBUSY);
	CHECK(strstr(phyr_last_error(), "did not create"), "message: %s", phyr_last_error());
	CHECK_RC(io_uring_unregister_buffers(ring), 0);

	/* Lookups on handles libphyr never made. */
	int local;
	unsigned idx;
	size_t avail;
	CHECK_RC(ring_reg_lookup((ring_reg_t *)&local, p, 1, &idx, &avail), -EINVAL);
	CHECK_RC(ring_reg_lookup(NULL, p, 1, &idx, &avail), -EINVAL);
	CHECK_RC(ring_unregister_ranges((ring_reg_t *)&local), -EINVAL);
	CHECK_RC(ring_unregister_ranges((ring_reg_t *)(uintptr_t)0xA000000000010000ULL), -EINVAL);
	CHECK_RC(ring_reg_bufs((ring_reg_t *)r, NULL, 0), -EINVAL);

	CHECK_RC(phyr_unpin(r), 0);
	CHECK(vmlck_bytes() == 0, "VmLck %" PRIu64 " after refusals", vmlck_bytes());
	munmap(p, 64 * KiB);
	munmap(rop, 64 * KiB);
}

/*
 * Before 5.16 every io_uring is a file of one shared anonymous inode, and
 * libphyr, which tells rings apart by inode, refuses to register rather than
 * guess.  Forced here (PHYR_FORCE_FALLBACK=ring-inode, in a new program: the
 * probe runs once per process): the refusal says why, changes nothing and
 * leaves errno alone, and pins -- long-term ones too -- still work.
 */
static int as_a_kernel_before_5_16(void)
{
	struct io_uring ring;
	CHECK_RC(io_uring_queue_init(8, &ring, 0), 0);
	char *p = base_alloc(64 * KiB);
	phyr_t *r, *held;
	ring_reg_t *reg = (ring_reg_t *)&ring;
	CHECK_RC(phyr_pin(p, 64 * KiB, PHYR_PIN_WRITE, &r), 0);
	errno = 4242;
	CHECK_RC(ring_register_ranges(&ring, &r, 1, 0, &reg), -EOPNOTSUPP);
	CHECK(errno == 4242, "errno changed to %d", errno);
	CHECK(strstr(phyr_last_error(), "5.16"), "message: %s", phyr_last_error());
	CHECK(reg == (ring_reg_t *)&ring, "*out was written");
	CHECK(ring_has_no_table(&ring), "a refused registration left a table");
	CHECK_RC(phyr_pin(p, 64 * KiB, PHYR_PIN_LONGTERM, &held), 0);
	CHECK_RC(phyr_unpin(held), 0);
	CHECK_RC(phyr_unpin(r), 0);
	io_uring_queue_exit(&ring);
	return 0;
}

static void refused_where_rings_share_an_inode(void)
{
	fflush(NULL);
	pid_t pid = fork();
	CHECK(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		setenv("PHYR_FORCE_FALLBACK", "ring-inode", 1);
		execl("/proc/self/exe", "test_ring", "--as-a-kernel-before-5.16", (char *)NULL);
		_exit(127);
	}
	int st;
	CHECK(waitpid(pid, &st, 0) == pid, "waitpid");
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the program as on a kernel before 5.16 %s %d",
	      WIFEXITED(st) ? "exited" : "was killed by signal", WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
}

int main(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "--as-a-kernel-before-5.16") == 0)
		return as_a_kernel_before_5_16();
	TEST_MAIN(argc, argv);
	struct io_uring ring;
	ring_or_skip(&ring, QD);
	RUN(plan_and_io, &ring);
	RUN(ranges_merge, &ring);
	RUN(slots_are_shared_and_reused, &ring);
	RUN(refusals, &ring);
	io_uring_queue_exit(&ring);
	RUN(check_ring_fd_reuse, 3);
	RUN(refused_where_rings_share_an_inode);
	CHECK(vmlck_bytes() == 0, "VmLck %" PRIu64 " at the end", vmlck_bytes());
	return t_done();
}
