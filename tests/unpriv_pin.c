/* SPDX-License-Identifier: MIT */
/* An ordinary user with CAP_IPC_LOCK only (run by tests/run.sh under setpriv):
 * no physical addresses, but pins far past RLIMIT_MEMLOCK. */
#include "harness.h"

static void pins_without_root(void)
{
	if (geteuid() == 0 || has_cap(T_CAP_SYS_ADMIN))
		skip("must run as an ordinary user (tests/run.sh uses setpriv --reuid=65534)");
	if (!has_cap(T_CAP_IPC_LOCK))
		skip("needs CAP_IPC_LOCK (setpriv --inh-caps=+ipc_lock --ambient-caps=+ipc_lock)");

	char *p = thp_alloc(256 * MiB);
	phyr_t *r;
	CHECK_RC(phyr_pin(p, 64 * KiB, PHYR_PIN_PHYS, &r), -EPERM);
	CHECK(strstr(phyr_last_error(), "CAP_SYS_ADMIN"), "message: %s", phyr_last_error());
	CHECK(vmlck_bytes() == 0, "refused pin locked memory");

	CHECK_RC(phyr_pin(p + 1 * MiB, 200 * MiB, PHYR_PIN_WRITE, &r), 0);
	CHECK_LOCKED_EXACTLY(p, 256 * MiB, p, p + 202 * MiB);
	struct phyr_seg s[4];
	int n = segs_of(r, s, 4);
	CHECK(n == 1 && s[0].flags == PHYR_SEG_HUGE && s[0].phys == PHYR_PHYS_UNKNOWN, "n %d flags %#x", n, s[0].flags);
	CHECK_RC(phyr_unpin(r), 0);
	CHECK_NOTHING_LOCKED(p, 256 * MiB);
	CHECK(huge_bytes_in(p, 256 * MiB) == 256 * MiB, "huge mapping split");
}

int main(int argc, char **argv)
{
	TEST_MAIN(argc, argv);
	RUN(pins_without_root);
	return t_done();
}
