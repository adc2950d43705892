/* SPDX-License-Identifier: MIT */
/* Registration at the kernel's limits: ranges over 1 GiB, 16384 buffers and
 * one more, tables that grow, hugetlb 2 MiB and 1 GiB pages.  Run again by
 * tests/run.sh with PHYR_FORCE_FALLBACK=clone, growing by re-registration. */
#include "ring_io.h"

#ifndef MAP_HUGE_SHIFT
#define MAP_HUGE_SHIFT 26
#endif

/* 1.5 GiB of THP from 100 bytes in: two coalesced buffers, the first ending on
 * a huge-page boundary within 1 GiB; I/O across the cut reads right. */
static void over_one_gib(struct io_uring *ring)
{
	size_t len = 1536 * MiB;
	char *p = thp_alloc(len);
	phyr_t *r;
	CHECK_RC(phyr_pin(p + 100, len - 100, PHYR_PIN_WRITE, &r), 0);
	ring_reg_t *reg;
	CHECK_RC(ring_register_ranges(ring, &r, 1, 0, &reg), 0);
	CHECK_RC(phyr_unpin(r), 0);
	struct ring_buf b[4];
	CHECK_RC(ring_reg_bufs(reg, b, 4), 2);
	CHECK(b[0].addr == U(p + 100) && b[0].addr + b[0].len == U(p + GiB) && b[1].len == len - GiB,
	      "cut at +%#" PRIx64, b[0].addr + b[0].len - U(p));
	for (int i = 0; i < 2; i++)
		CHECK(b[i].flags == COALESCES_SEVERAL() && b[i].page_shift == 21 && b[i].len <= GiB, "buffer %d", i);
	int in = pattern_file(8 * MiB, 11);
	char *at = p + GiB - 4 * MiB;
	int splits = fixed_io(ring, reg, in, at, 8 * MiB, 0, 0, 3 * MiB);
	CHECK(splits == 1, "%d splits across the 1 GiB cut", splits);
	CHECK(check_pattern(at, 8 * MiB, 0, 11) < 0, "data across the 1 GiB cut");
	CHECK_RC(ring_unregister_ranges(reg), 0);
	CHECK_NOTHING_LOCKED(p, len);
	close(in);
	munmap(p, len);
}

/* 16384 separate pages fill a table; one more does not fit.  Registered one
 * batch at a time, the table grows from its first size to 16384. */
static void table_limits(struct io_uring *ring)
{
	enum { N = 16384 };
	size_t len = 2 * (N + 1) * PAGE;
	char *p = base_alloc(len);
	static phyr_t *r[N + 1];
	/* From the top down: before Linux 6.11 a pin reads /proc/self/maps as far
	 * as its own address, and each pin here splits a mapping in three, so
	 * going up would make this setup quadratic (bench_pin measures that). */
	for (int i = N; i >= 0; i--)
		CHECK_RC(phyr_pin(p + 2 * (uint64_t)i * PAGE, PAGE, PHYR_PIN_WRITE, &r[i]), 0);

	ring_reg_t *all;
	CHECK_RC(ring_register_ranges(ring, r, N + 1, 0, &all), -ENOSPC);
	CHECK(strstr(phyr_last_error(), "16384"), "message: %s", phyr_last_error());
	CHECK(ring_has_no_table(ring), "a refused registration left a table");
	CHECK_RC(ring_register_ranges(ring, r, N, 0, &all), 0);
	CHECK_RC(ring_reg_bufs(all, NULL, 0), N);
	unsigned idx;
	size_t avail;
	CHECK_RC(ring_reg_lookup(all, p + 2 * (uint64_t)(N - 1) * PAGE + 5, 100, &idx, &avail), 0);
	CHECK(idx == N - 1 && avail == 100, "last page: index %u avail %zu", idx, avail);
	phyr_t *extra = r[N];
	ring_reg_t *one;
	CHECK_RC(ring_register_ranges(ring, &extra, 1, 0, &one), -ENOSPC);
	CHECK_RC(ring_unregister_ranges(all), 0);

	/* Growth: 1, then batches, every buffer keeping its slot and its data. */
	static ring_reg_t *regs[64];
	int nregs = 0, done = 0, batch = 1;
	while (done < N) {
		int n = N - done < batch ? N - done : batch;
		CHECK_RC(ring_register_ranges(ring, r + done, (unsigned)n, 0, &regs[nregs]), 0);
		struct ring_buf first;
		CHECK(ring_reg_bufs(regs[nregs], &first, 1) == n && first.index == (unsigned)done,
		      "batch at %d got slot %u", done, first.index);
		nregs++;
		done += n;
		batch *= 2;
	}
	/* Buffers registered before the table grew still serve I/O. */
	int in = pattern_file(2 * PAGE, 5);
	fixed_io(ring, regs[0], in, p, PAGE, 0, 0, PAGE);
	CHECK(check_pattern(p, PAGE, 0, 5) < 0, "I/O on the first buffer after growth");
	for (int i = 0; i < nregs; i++)
		CHECK_RC(ring_unregister_ranges(regs[i]), 0);
	CHECK(ring_has_no_table(ring), "table left behind");
	for (int i = 0; i <= N; i++)
		CHECK_RC(phyr_unpin(r[i]), 0);
	close(in);
	munmap(p, len);
}

static void hugetlb(struct io_uring *ring, uint64_t page, unsigned shift)
{
	size_t len = 2 * page;
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | ((int)shift << MAP_HUGE_SHIFT), -1, 0);
	if (p == MAP_FAILED) {
		skip("no %" PRIu64 " KiB hugetlb pages: %s (make hugepages reserves them)", page / KiB, strerror(errno));
	}
	phyr_t *r;
	int rc = phyr_pin(p + 4096, len - 8192, PHYR_PIN_WRITE, &r);
	if (rc == -ENOMEM) {
		munmap(p, len);
		skip("%" PRIu64 " KiB hugetlb pool too small: %s", page / KiB, phyr_last_error());
	}
	CHECK_RC(rc, 0);
	ring_reg_t *reg;
	CHECK_RC(ring_register_ranges(ring, &r, 1, 0, &reg), 0);
	CHECK_RC(phyr_unpin(r), 0);
	struct ring_buf b[4];
	int n = ring_reg_bufs(reg, b, 4);
	CHECK(n >= 1, "ring_reg_bufs %d", n);
	for (int i = 0; i < n; i++)
		/* 1 GiB pages: each buffer lies within one of them. */
		CHECK(b[i].page_shift == shift && b[i].flags == (shift == 30 ? COALESCES_ONE() : COALESCES_SEVERAL()) &&
		      b[i].len <= GiB,
		      "hugetlb buffer %d: shift %u flags %#x", i, b[i].page_shift, b[i].flags);
	size_t io = page > 4 * MiB ? 8 * MiB : 2 * MiB;
	char *at = p + page - io / 2; /* across the two huge pages */
	int in = pattern_file(io, shift);
	fixed_io(ring, reg, in, at, io, 0, 0, 1 * MiB);
	CHECK(check_pattern(at, io, 0, shift) < 0, "hugetlb fixed read data");
	CHECK_RC(ring_unregister_ranges(reg), 0);
	close(in);
	munmap(p, len);
}

static void hugetlb_2_mib(struct io_uring *ring)
{
	hugetlb(ring, 2 * MiB, 21);
}

static void hugetlb_1_gib(struct io_uring *ring)
{
	hugetlb(ring, GiB, 30);
}

int main(int argc, char **argv)
{
	TEST_MAIN(argc, argv);
	struct io_uring ring;
	ring_or_skip(&ring, QD);
	RUN(over_one_gib, &ring);
	RUN(table_limits, &ring);
	RUN(hugetlb_2_mib, &ring);
	RUN(hugetlb_1_gib, &ring);
	io_uring_queue_exit(&ring);
	CHECK(vmlck_bytes() == 0, "VmLck %" PRIu64 " at the end", vmlck_bytes());
	return t_done();
}
