/* SPDX-License-Identifier: MIT */
/* RLIMIT_MEMLOCK for a user with no capability at all (run by tests/run.sh
 * under setpriv --inh-caps=-all): -ENOMEM that names the limit, and nothing
 * locked by the failed call. */
#include "harness.h"

#include <sys/resource.h>

static void pins_within_the_limit(void)
{
	if (has_cap(T_CAP_IPC_LOCK))
		skip("CAP_IPC_LOCK ignores RLIMIT_MEMLOCK: run as an ordinary user without it (setpriv --inh-caps=-all)");
	struct rlimit rl = { 4 * MiB, 4 * MiB };
	struct rlimit cur;
	getrlimit(RLIMIT_MEMLOCK, &cur);
	if (cur.rlim_max != RLIM_INFINITY && cur.rlim_max < rl.rlim_max)
		skip("hard RLIMIT_MEMLOCK %llu is below 4 MiB", (unsigned long long)cur.rlim_max);
	CHECK(setrlimit(RLIMIT_MEMLOCK, &rl) == 0, "setrlimit: %s", strerror(errno));

	char *p = thp_alloc(32 * MiB);
	phyr_t *a, *b;
	/* 8 MiB of pin needs 10 MiB locked: past the limit. */
	CHECK_RC(phyr_pin(p + 1 * MiB, 8 * MiB, 0, &a), -ENOMEM);
	CHECK(strstr(phyr_last_error(), "RLIMIT_MEMLOCK is 4 MiB"), "message: %s", phyr_last_error());
	CHECK(vmlck_bytes() == 0, "failed pin left %" PRIu64 " bytes locked", vmlck_bytes());
	CHECK_NOTHING_LOCKED(p, 32 * MiB);

	/* Within the limit; then a second pin that overlaps costs only its new
	 * folios; a third that needs more than what is left fails whole. */
	CHECK_RC(phyr_pin(p + 1 * MiB, 1 * MiB, 0, &a), 0);             /* [0, 2M) */
	CHECK_RC(phyr_pin(p + 1 * MiB + 5, 2 * MiB, 0, &b), 0);         /* + [2M, 4M) */
	CHECK(vmlck_bytes() == 4 * MiB, "VmLck %" PRIu64, vmlck_bytes());
	phyr_t *c;
	CHECK_RC(phyr_pin(p + 3 * MiB, 2 * MiB, 0, &c), -ENOMEM);       /* would add [4M, 6M) */
	CHECK(strstr(phyr_last_error(), "4 MiB is locked already"), "message: %s", phyr_last_error());
	CHECK(vmlck_bytes() == 4 * MiB, "failed pin changed VmLck to %" PRIu64, vmlck_bytes());
	CHECK_LOCKED_EXACTLY(p, 32 * MiB, p, p + 4 * MiB);
	CHECK_RC(phyr_unpin(a), 0);
	CHECK_RC(phyr_unpin(b), 0);
	CHECK(vmlck_bytes() == 0, "VmLck %" PRIu64 " at the end", vmlck_bytes());
	CHECK(huge_bytes_in(p, 32 * MiB) == 32 * MiB, "huge mapping split");

	/* New memory at an address a live range still counts must be locked
	 * anew; past the limit that is -ENOMEM naming the limit, like any lock. */
	struct rlimit one = { 1 * MiB, 4 * MiB };
	CHECK(setrlimit(RLIMIT_MEMLOCK, &one) == 0, "setrlimit: %s", strerror(errno));
	char *x = base_alloc(512 * KiB), *y = base_alloc(700 * KiB);
	phyr_t *stale, *other, *again;
	CHECK_RC(phyr_pin(x, 512 * KiB, 0, &stale), 0);
	CHECK(munmap(x, 512 * KiB) == 0, "munmap");
	CHECK(mmap(x, 512 * KiB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == x, "mmap");
	CHECK_RC(phyr_pin(y, 700 * KiB, 0, &other), 0);
	CHECK_RC(phyr_pin(x, 512 * KiB, 0, &again), -ENOMEM);
	CHECK(strstr(phyr_last_error(), "RLIMIT_MEMLOCK is 1 MiB"), "message: %s", phyr_last_error());
	CHECK_RC(phyr_unpin(other), 0);
	CHECK_RC(phyr_unpin(stale), 0);
	CHECK(vmlck_bytes() == 0, "VmLck %" PRIu64, vmlck_bytes());

	/* A limit of 0 is mlock's EPERM, not a lack of memory. */
	struct rlimit zero = { 0, 4 * MiB };
	CHECK(setrlimit(RLIMIT_MEMLOCK, &zero) == 0, "setrlimit: %s", strerror(errno));
	CHECK_RC(phyr_pin(p, 4096, 0, &a), -EPERM);
	CHECK(strstr(phyr_last_error(), "RLIMIT_MEMLOCK is 0") && strstr(phyr_last_error(), "CAP_IPC_LOCK"),
	      "message: %s", phyr_last_error());
	CHECK(vmlck_bytes() == 0, "VmLck %" PRIu64, vmlck_bytes());
}

int main(int argc, char **argv)
{
	TEST_MAIN(argc, argv);
	RUN(pins_within_the_limit);
	return t_done();
}
