/* SPDX-License-Identifier: MIT */
/* Thread safety: threads pin, split and unpin overlapping ranges of one THP
 * region at once; at the end nothing is locked and every mapping is huge. */
#include "harness.h"

#include <pthread.h>

#define THREADS 4
#define ROUNDS 3000
#define REGION (64 * MiB)
#define HELD 16

static char *region;

static void *worker(void *arg)
{
	uint64_t seed = 0x9e3779b97f4a7c15ULL * (uint64_t)(uintptr_t)arg + 1;
	phyr_t *held[HELD] = { 0 };
	for (int i = 0; i < rounds(ROUNDS); i++) {
		int slot = (int)(next_rand(&seed) % HELD);
		if (!held[slot]) {
			uint64_t off = next_rand(&seed) % (REGION - 8 * MiB);
			uint64_t len = 1 + next_rand(&seed) % (6 * MiB);
			CHECK_RC(phyr_pin(region + off, len, next_rand(&seed) & 1 ? PHYR_PIN_WRITE : 0, &held[slot]), 0);
		} else if (next_rand(&seed) % 3 == 0) {
			size_t len;
			CHECK_RC(phyr_range(held[slot], NULL, &len), 0);
			int free_slot = -1;
			for (int j = 0; j < HELD; j++)
				if (!held[j])
					free_slot = j;
			if (len > 1 && free_slot >= 0) {
				size_t cut = 1 + next_rand(&seed) % (len - 1);
				CHECK_RC(phyr_split(held[slot], cut, &held[free_slot]), 0);
			}
		} else {
			struct phyr_seg s[8];
			CHECK(phyr_segs(held[slot], s, 8) >= 1, "segs");
			CHECK_RC(phyr_unpin(held[slot]), 0);
			held[slot] = NULL;
		}
	}
	for (int j = 0; j < HELD; j++)
		if (held[j])
			CHECK_RC(phyr_unpin(held[j]), 0);
	return NULL;
}

static void threads_pin_split_unpin(void)
{
	region = thp_alloc(REGION);
	pthread_t t[THREADS];
	for (uintptr_t i = 0; i < THREADS; i++)
		CHECK(pthread_create(&t[i], NULL, worker, (void *)i) == 0, "pthread_create");
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	CHECK_NOTHING_LOCKED(region, REGION);
	CHECK(vmlck_bytes() == 0, "VmLck %" PRIu64 " after all threads released everything", vmlck_bytes());
	CHECK(huge_bytes_in(region, REGION) == REGION, "only %" PRIu64 " of the region is still huge",
	      huge_bytes_in(region, REGION));
}

int main(int argc, char **argv)
{
	TEST_MAIN(argc, argv);
	RUN(threads_pin_split_unpin);
	return t_done();
}
