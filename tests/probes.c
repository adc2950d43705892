/* SPDX-License-Identifier: MIT */
/*
 * probes - what libphyr found the running kernel to do.  Pins memory,
 * registers it in a ring and grows the ring's table, so that every probe
 * runs, with PHYR_DEBUG=probes (libphyr then says each decision on stderr).
 * Not a test: tests/kernels.sh runs it first on each kernel it boots.
 */
#include "ring_io.h"

int main(void)
{
	setenv("PHYR_DEBUG", "probes", 1);
	char *p = base_alloc(64 * PAGE);
	phyr_t *r[40];
	for (int i = 0; i < 40; i++)
		CHECK_RC(phyr_pin(p + (uint64_t)i * PAGE, PAGE, PHYR_PIN_WRITE, &r[i]), 0);
	struct io_uring ring;
	if (io_uring_queue_init(8, &ring, 0) != 0) {
		printf("no io_uring here\n");
		return 0;
	}
	ring_reg_t *reg[40];
	for (int i = 0; i < 40; i++) /* one at a time: the table grows past its first size */
		CHECK_RC(ring_register_ranges(&ring, &r[i], 1, 0, &reg[i]), 0);
	for (int i = 0; i < 40; i++) {
		CHECK_RC(ring_unregister_ranges(reg[i]), 0);
		CHECK_RC(phyr_unpin(r[i]), 0);
	}
	io_uring_queue_exit(&ring);
	return 0;
}
