/* SPDX-License-Identifier: MIT */
/* io_uring's lock charge for a user with no capability (run by tests/run.sh
 * under setpriv --inh-caps=-all): -ENOMEM that gives the charge and the
 * limit, nothing registered; within the limit, registration and I/O work. */
#include "ring_io.h"

#include <sys/resource.h>

static void registrations_within_the_limit(void)
{
	if (has_cap(T_CAP_IPC_LOCK))
		skip("CAP_IPC_LOCK lifts io_uring's lock accounting: run as an ordinary user without it");
	struct rlimit rl;
	getrlimit(RLIMIT_MEMLOCK, &rl);
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < 8 * MiB)
		skip("RLIMIT_MEMLOCK %llu is below the 8 MiB this test plans for", (unsigned long long)rl.rlim_cur);
	struct rlimit eight = { 8 * MiB, rl.rlim_max };
	CHECK(setrlimit(RLIMIT_MEMLOCK, &eight) == 0, "setrlimit: %s", strerror(errno));

	struct io_uring ring;
	ring_or_skip(&ring, 8);
	char *p = thp_alloc(16 * MiB);
	phyr_t *r;
	CHECK_RC(phyr_pin(p, 6 * MiB, PHYR_PIN_WRITE, &r), 0);  /* 6 MiB of mlock */

	/* io_uring charges its own account: 6 MiB more would fit under 8 MiB, so
	 * lower the limit to 4 MiB (locked memory stays locked). */
	struct rlimit four = { 4 * MiB, rl.rlim_max };
	CHECK(setrlimit(RLIMIT_MEMLOCK, &four) == 0, "setrlimit: %s", strerror(errno));
	ring_reg_t *reg;
	CHECK_RC(ring_register_ranges(&ring, &r, 1, 0, &reg), -ENOMEM);
	CHECK(strstr(phyr_last_error(), "6 MiB") && strstr(phyr_last_error(), "RLIMIT_MEMLOCK is 4 MiB"),
	      "message: %s", phyr_last_error());
	/* libphyr keeps no duplicate of a ring it has nothing in. */
	CHECK(io_uring_fd_count() == 1, "%d io_uring descriptors after a refused first registration: libphyr kept "
	      "its duplicate of the ring", io_uring_fd_count());
	CHECK(ring_has_no_table(&ring), "a refused registration left a table");

	/* 2 MiB (one huge page) fits, and works. */
	CHECK(setrlimit(RLIMIT_MEMLOCK, &eight) == 0, "setrlimit");
	phyr_t *small;
	CHECK_RC(phyr_pin(p + 8 * MiB, 2 * MiB, PHYR_PIN_WRITE, &small), 0);
	CHECK(setrlimit(RLIMIT_MEMLOCK, &four) == 0, "setrlimit");
	CHECK_RC(ring_register_ranges(&ring, &small, 1, 0, &reg), 0);
	int in = pattern_file(2 * MiB, 21);
	fixed_io(&ring, reg, in, p + 8 * MiB, 2 * MiB, 0, 0, 512 * KiB);
	CHECK(check_pattern(p + 8 * MiB, 2 * MiB, 0, 21) < 0, "fixed read data");
	/* A second huge page would pass the 4 MiB limit with the 2 MiB charged. */
	phyr_t *more;
	ring_reg_t *reg2;
	CHECK_RC(phyr_pin(p, 4 * MiB, PHYR_PIN_WRITE, &more), 0);
	CHECK_RC(ring_register_ranges(&ring, &more, 1, 0, &reg2), -ENOMEM);
	CHECK(strstr(phyr_last_error(), "2 MiB already"), "message: %s", phyr_last_error());
	CHECK_RC(ring_unregister_ranges(reg), 0);
	CHECK_RC(phyr_unpin(small), 0);
	CHECK_RC(phyr_unpin(more), 0);
	CHECK_RC(phyr_unpin(r), 0);
	CHECK(vmlck_bytes() == 0, "VmLck %" PRIu64, vmlck_bytes());
	io_uring_queue_exit(&ring);
	close(in);
}

int main(int argc, char **argv)
{
	TEST_MAIN(argc, argv);
	RUN(registrations_within_the_limit);
	return t_done();
}
