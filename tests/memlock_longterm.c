/* SPDX-License-Identifier: MIT */
/* PHYR_PIN_LONGTERM under RLIMIT_MEMLOCK for a user with no capability (run
 * by tests/run.sh under setpriv --inh-caps=-all): -ENOMEM that gives the
 * kernel's charge and the limit, nothing held; within the limit the pin is
 * held (VmPin) and splits and releases cleanly. */
#include "ring_io.h"

#include <sys/resource.h>

static void longterm_within_the_limit(void)
{
	if (has_cap(T_CAP_IPC_LOCK))
		skip("CAP_IPC_LOCK lifts io_uring's lock accounting: run as an ordinary user without it");
	struct io_uring probe;
	ring_or_skip(&probe, 1);
	io_uring_queue_exit(&probe);
	struct rlimit rl;
	getrlimit(RLIMIT_MEMLOCK, &rl);
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < 8 * MiB)
		skip("RLIMIT_MEMLOCK %llu is below the 8 MiB this test plans for", (unsigned long long)rl.rlim_cur);
	struct rlimit eight = { 8 * MiB, rl.rlim_max };
	CHECK(setrlimit(RLIMIT_MEMLOCK, &eight) == 0, "setrlimit: %s", strerror(errno));

	char *p = base_alloc(16 * MiB);
	uint64_t pin0 = vmpin_bytes();
	phyr_t *r, *big;
	CHECK_RC(phyr_pin(p, 12 * MiB, PHYR_PIN_LONGTERM, &big), -ENOMEM);
	CHECK(strstr(phyr_last_error(), "12 MiB") && strstr(phyr_last_error(), "RLIMIT_MEMLOCK is 8 MiB"),
	      "message: %s", phyr_last_error());
	CHECK(vmpin_reaches(pin0) == pin0, "a refused pin left VmPin at %" PRIu64, vmpin_bytes());

	CHECK_RC(phyr_pin(p, 6 * MiB, PHYR_PIN_LONGTERM, &r), 0);
	CHECK(vmpin_bytes() - pin0 == 6 * MiB, "VmPin grew by %" PRIu64, vmpin_bytes() - pin0);
	CHECK_RC(phyr_pin(p + 8 * MiB, 4 * MiB, PHYR_PIN_LONGTERM, &big), -ENOMEM);
	CHECK(strstr(phyr_last_error(), "6 MiB already"), "message: %s", phyr_last_error());
	/* A split pins the straddling buffer's halves before the old one goes:
	 * 6 MiB more would not fit; nothing changes then. */
	phyr_t *tail;
	CHECK_RC(phyr_split(r, 3 * MiB + 10, &tail), -ENOMEM);
	void *a;
	size_t l;
	CHECK_RC(phyr_range(r, &a, &l), 0);
	CHECK(a == p && l == 6 * MiB, "a failed split changed the range");
	CHECK_RC(phyr_unpin(r), 0);
	CHECK(vmpin_reaches(pin0) == pin0, "VmPin %" PRIu64 " after the unpin", vmpin_bytes());

	/* Within the limit, split and release. */
	CHECK_RC(phyr_pin(p, 2 * MiB, PHYR_PIN_LONGTERM, &r), 0);
	CHECK_RC(phyr_split(r, MiB + 10, &tail), 0);
	CHECK_RC(phyr_unpin(tail), 0);
	CHECK_RC(phyr_unpin(r), 0);
	CHECK(vmpin_reaches(pin0) == pin0, "VmPin %" PRIu64 " after the split halves' unpins", vmpin_bytes());
	CHECK(vmlck_bytes() == 0, "VmLck %" PRIu64, vmlck_bytes());
	munmap(p, 16 * MiB);
}

int main(int argc, char **argv)
{
	TEST_MAIN(argc, argv);
	RUN(longterm_within_the_limit);
	return t_done();
}
