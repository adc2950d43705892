/* SPDX-License-Identifier: MIT */
/* Random garbage at every entry point: each call answers 0 or a negative
 * errno with a message, the process survives, and nothing stays locked. */
#include "ring_io.h"

static const uint64_t interesting[] = {
	0, 1, 4095, 4096, UINT64_C(0x7fffffffffff), UINT64_C(0x800000000000), UINT64_C(0xffff800000000000),
	UINT64_MAX, UINT64_MAX - 4095, UINT64_C(1) << 56, UINT64_C(1) << 57, UINT64_C(0x8000000000000001),
	UINT64_C(0xA000000000010000),
};
#define NI (sizeof interesting / sizeof interesting[0])

static uint64_t pick(uint64_t *seed, char *mapped, size_t mapped_len)
{
	switch (next_rand(seed) % 5) {
	case 0:
		return interesting[next_rand(seed) % NI];
	case 1:
		return next_rand(seed);
	default: /* mostly near real memory, edges included */
		return U(mapped) + next_rand(seed) % (mapped_len + 8192) - 4096;
	}
}

static void expect_sane(int rc, const char *what)
{
	CHECK(rc == 0 || (rc < 0 && rc > -4096), "%s returned %d", what, rc);
	if (rc < 0)
		CHECK(strlen(phyr_last_error()) > 0, "%s failed (%d) without a message", what, rc);
}

static void garbage_in(void)
{
	char *p = thp_alloc(8 * MiB);
	struct io_uring ring;
	/* Without io_uring (disabled, denied) the ring calls get garbage too,
	 * through a ring whose fd is something else. */
	int have_ring = io_uring_queue_init(8, &ring, 0) == 0;
	if (!have_ring) {
		fprintf(stderr, "note: no io_uring here: the ring calls get a ring whose fd is not an io_uring\n");
		memset(&ring, 0, sizeof ring);
		ring.ring_fd = open("/dev/null", O_RDONLY);
	}
	uint64_t seed = 0xdeadbeef;
	long pinned = 0, registered = 0, found = 0;
	int n = rounds(30000);
	for (int i = 0; i < n; i++) {
		void *addr = (void *)(uintptr_t)pick(&seed, p, 8 * MiB);
		size_t len = next_rand(&seed) % 4 ? 1 + next_rand(&seed) % (9 * MiB) : (size_t)pick(&seed, p, 8 * MiB);
		unsigned flags = (unsigned)(next_rand(&seed) % 5);
		phyr_t *r = NULL, *t = NULL;
		int rc = phyr_pin(addr, len, flags, &r);
		expect_sane(rc, "phyr_pin");
		pinned += rc == 0;
		phyr_t *h = rc == 0 ? r : (phyr_t *)(uintptr_t)pick(&seed, p, 8 * MiB);
		size_t off = (size_t)pick(&seed, p, 8 * MiB);
		expect_sane(phyr_split(h, off, &t), "phyr_split");
		struct phyr_seg segs[4];
		int n = phyr_segs(h, segs, 4);
		CHECK(n >= 1 || (n < 0 && n > -4096), "phyr_segs returned %d", n);
		void *a;
		size_t l;
		expect_sane(phyr_range(h, &a, &l), "phyr_range");
		ring_reg_t *reg = NULL;
		phyr_t *both[2] = { h, t ? t : (phyr_t *)(uintptr_t)pick(&seed, p, 8 * MiB) };
		rc = ring_register_ranges(&ring, both, next_rand(&seed) % 3, (unsigned)(next_rand(&seed) % 2), &reg);
		expect_sane(rc, "ring_register_ranges");
		registered += rc == 0;
		ring_reg_t *rh = rc == 0 ? reg : (ring_reg_t *)(uintptr_t)pick(&seed, p, 8 * MiB);
		unsigned idx;
		size_t avail;
		void *at = rc == 0 && next_rand(&seed) % 2 ? (char *)addr + next_rand(&seed) % (len ? len : 1)
							  : (void *)(uintptr_t)pick(&seed, p, 8 * MiB);
		rc = ring_reg_lookup(rh, at, (size_t)pick(&seed, p, 8 * MiB), &idx, &avail);
		expect_sane(rc, "ring_reg_lookup");
		found += rc == 0;
		struct ring_buf bufs[2];
		n = ring_reg_bufs(rh, bufs, 2);
		CHECK(n >= 0 || n > -4096, "ring_reg_bufs returned %d", n);
		expect_sane(ring_unregister_ranges(rh), "ring_unregister_ranges");
		if (t)
			expect_sane(phyr_unpin(t), "phyr_unpin");
		expect_sane(phyr_unpin(h), "phyr_unpin");
	}
	fprintf(stderr, "%ld pins, %ld registrations, %ld lookups succeeded among the garbage\n", pinned, registered, found);
	CHECK(pinned > n / 15, "too few calls got past validation to mean anything");
	if (have_ring) {
		CHECK(registered > n / 100 && found > n / 200, "too few registrations got past validation to mean anything");
		CHECK(ring_has_no_table(&ring), "a table outlived the garbage");
	} else {
		CHECK(registered == 0, "%ld registrations into a ring that is not one", registered);
	}
	CHECK(vmlck_bytes() == 0, "VmLck %" PRIu64 " after the garbage", vmlck_bytes());
	CHECK(huge_bytes_in(p, 8 * MiB) == 8 * MiB, "a huge mapping was split");
	if (have_ring)
		io_uring_queue_exit(&ring);
}

int main(int argc, char **argv)
{
	TEST_MAIN(argc, argv);
	RUN(garbage_in);
	return t_done();
}
