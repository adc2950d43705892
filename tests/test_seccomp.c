/* SPDX-License-Identifier: MIT */
/*
 * Under seccomp filters as containers install them: kcmp denied (rings are
 * still told apart when a fd number comes back), io_uring denied (pins keep
 * working, registrations fail with a sentence that says why), and the
 * scratch rings that grow a table by cloning denied (tables grow by
 * re-registering instead).  Each case runs in a child: filters are forever.
 */
#include "ring_io.h"

#ifndef SYS_kcmp
#define SYS_kcmp 312
#endif

static void fd_reuse_without_kcmp(void *arg)
{
	(void)arg;
	int nrs[] = { SYS_kcmp };
	deny_syscalls(nrs, 1, EPERM);
	/* Rings are told apart by inode alone: a container profile that
	 * denies kcmp (as Docker's default does) changes nothing. */
	check_ring_fd_reuse(9);
}

static void io_uring_denied(void *arg)
{
	int err = (int)(intptr_t)arg;
	struct io_uring ring;
	CHECK_RC(io_uring_queue_init(8, &ring, 0), 0); /* made before the filter */
	int nrs[] = { __NR_io_uring_setup, __NR_io_uring_enter, __NR_io_uring_register };
	deny_syscalls(nrs, 3, err);

	char *p = thp_alloc(8 * MiB);
	phyr_t *r;
	CHECK_RC(phyr_pin(p + 1, 4 * MiB, PHYR_PIN_WRITE, &r), 0);
	CHECK_LOCKED_EXACTLY(p, 8 * MiB, p, p + 6 * MiB);
	struct phyr_seg s[2];
	CHECK(segs_of(r, s, 2) == 1 && s[0].flags == PHYR_SEG_HUGE, "segments under the filter");
	ring_reg_t *reg = (ring_reg_t *)0x1;
	CHECK_RC(ring_register_ranges(&ring, &r, 1, 0, &reg), -EOPNOTSUPP);
	CHECK(strstr(phyr_last_error(), "seccomp") && strstr(phyr_last_error(), "io_uring_register"),
	      "message: %s", phyr_last_error());
	CHECK(reg == (ring_reg_t *)0x1, "a refused registration wrote *out");
	CHECK_RC(phyr_unpin(r), 0);
	CHECK_NOTHING_LOCKED(p, 8 * MiB);
	CHECK(vmlck_bytes() == 0, "a refused registration left %" PRIu64 " locked", vmlck_bytes());
}

static void tables_grow_without_scratch_rings(void *arg)
{
	(void)arg;
	struct io_uring ring;
	CHECK_RC(io_uring_queue_init(8, &ring, 0), 0);
	int nrs[] = { __NR_io_uring_setup };
	deny_syscalls(nrs, 1, EPERM);
	enum { N = 100 };
	char *p = base_alloc(2 * N * PAGE);
	phyr_t *r[N];
	ring_reg_t *reg[N];
	for (int i = 0; i < N; i++) {
		CHECK_RC(phyr_pin(p + 2 * (uint64_t)i * PAGE, PAGE, PHYR_PIN_WRITE, &r[i]), 0);
		CHECK_RC(ring_register_ranges(&ring, &r[i], 1, 0, &reg[i]), 0);
	}
	int slots;
	CHECK(fdinfo_bufs(ring.ring_fd, &slots) == N && slots >= N, "%d buffers in %d slots",
	      fdinfo_bufs(ring.ring_fd, NULL), slots);
	int in = pattern_file(PAGE, 3);
	fixed_io(&ring, reg[0], in, p, PAGE, 0, 0, PAGE);
	CHECK(check_pattern(p, PAGE, 0, 3) < 0, "I/O on the first buffer after the table grew");
	for (int i = 0; i < N; i++) {
		CHECK_RC(ring_unregister_ranges(reg[i]), 0);
		CHECK_RC(phyr_unpin(r[i]), 0);
	}
	CHECK(ring_has_no_table(&ring), "table left behind");
	close(in);
}

int main(int argc, char **argv)
{
	TEST_MAIN(argc, argv);
	struct io_uring probe;
	ring_or_skip(&probe, 2); /* every case is about io_uring under a filter */
	io_uring_queue_exit(&probe);
	RUN_CHILD(fd_reuse_without_kcmp, NULL);
	RUN_CHILD(io_uring_denied, (void *)(intptr_t)EPERM);
	RUN_CHILD(io_uring_denied, (void *)(intptr_t)ENOSYS);
	RUN_CHILD(tables_grow_without_scratch_rings, NULL);
	return t_done();
}
