/* SPDX-License-Identifier: MIT */
/* Threads registering, looking up and unregistering on one ring at once: the
 * table grows and shrinks under them; at the end the ring has no table,
 * nothing is locked and every huge mapping is intact. */
#include "ring_io.h"

#include <pthread.h>

#define THREADS 4
#define ROUNDS 2000
#define REGION (64 * MiB)
#define HELD 8

static char *region;
static struct io_uring ring;

static void *worker(void *arg)
{
	uint64_t seed = 0x2545f4914f6cdd1dULL * ((uint64_t)(uintptr_t)arg + 1);
	ring_reg_t *held[HELD] = { 0 };
	uint64_t lo[HELD], len[HELD];
	for (int i = 0; i < rounds(ROUNDS); i++) {
		int slot = (int)(next_rand(&seed) % HELD);
		if (!held[slot]) {
			lo[slot] = next_rand(&seed) % (REGION - 8 * MiB);
			len[slot] = 1 + next_rand(&seed) % (6 * MiB);
			phyr_t *r[2];
			CHECK_RC(phyr_pin(region + lo[slot], len[slot], PHYR_PIN_WRITE, &r[0]), 0);
			int nr = 1;
			if (len[slot] > 1) { /* two ranges that touch: they merge into one plan */
				CHECK_RC(phyr_split(r[0], len[slot] / 2, &r[1]), 0);
				nr = 2;
			}
			CHECK_RC(ring_register_ranges(&ring, r, (unsigned)nr, 0, &held[slot]), 0);
			for (int k = 0; k < nr; k++)
				CHECK_RC(phyr_unpin(r[k]), 0);
		} else if (next_rand(&seed) % 2) {
			for (int k = 0; k < 16; k++) {
				uint64_t off = next_rand(&seed) % len[slot];
				unsigned idx;
				size_t avail;
				CHECK_RC(ring_reg_lookup(held[slot], region + lo[slot] + off, 4096, &idx, &avail), 0);
				CHECK(avail >= 1 && avail <= 4096 && idx < 16384, "lookup: index %u avail %zu", idx, avail);
			}
		} else {
			CHECK_RC(ring_unregister_ranges(held[slot]), 0);
			held[slot] = NULL;
		}
	}
	for (int j = 0; j < HELD; j++)
		if (held[j])
			CHECK_RC(ring_unregister_ranges(held[j]), 0);
	return NULL;
}

/* Lookups racing with the unregistration of their own handle, while new
 * registrations reuse its memory: every answer is the old registration's
 * or -EINVAL, never another's and never a crash. */
static ring_reg_t *racing;
static struct ring_buf racing_bufs[64];
static int racing_n;
static volatile int racing_done;

static void *racer(void *arg)
{
	(void)arg;
	uint64_t seed = 12345;
	long ok = 0, dead = 0;
	while (!racing_done) {
		int b = (int)(next_rand(&seed) % (uint64_t)racing_n);
		uint64_t at = racing_bufs[b].addr + next_rand(&seed) % racing_bufs[b].len;
		unsigned idx;
		size_t avail;
		int rc = ring_reg_lookup(racing, (void *)(uintptr_t)at, 1 << 20, &idx, &avail);
		if (rc == 0) {
			uint64_t room = racing_bufs[b].addr + racing_bufs[b].len - at;
			CHECK(idx == racing_bufs[b].index && avail == (room < (1 << 20) ? room : (1 << 20)),
			      "a racing lookup answered index %u avail %zu, wanted %u", idx, avail, racing_bufs[b].index);
			ok++;
		} else {
			CHECK(rc == -EINVAL, "a racing lookup returned %d", rc);
			dead++;
		}
	}
	fprintf(stderr, "racing lookups: %ld answered, %ld refused\n", ok, dead);
	return NULL;
}

static void lookup_races_unregister(void)
{
	/* Fragmented THP: several buffers per registration. */
	char *p = thp_alloc(32 * MiB);
	for (uint64_t at = 4 * MiB; at < 32 * MiB; at += 6 * MiB)
		stray_page(p, at);
	phyr_t *r;
	CHECK_RC(phyr_pin(p, 32 * MiB, PHYR_PIN_WRITE, &r), 0);
	for (int round = 0; round < rounds(50); round++) {
		CHECK_RC(ring_register_ranges(&ring, &r, 1, 0, &racing), 0);
		racing_n = ring_reg_bufs(racing, racing_bufs, 64);
		CHECK(racing_n > 1 && racing_n <= 64, "%d buffers", racing_n);
		racing_done = 0;
		pthread_t t;
		CHECK(pthread_create(&t, NULL, racer, NULL) == 0, "pthread_create");
		usleep(200);
		CHECK_RC(ring_unregister_ranges(racing), 0);
		/* New registrations reuse the same index block and handle slot. */
		for (int k = 0; k < 20; k++) {
			ring_reg_t *other;
			CHECK_RC(ring_register_ranges(&ring, &r, 1, 0, &other), 0);
			CHECK_RC(ring_unregister_ranges(other), 0);
		}
		racing_done = 1;
		pthread_join(t, NULL);
	}
	CHECK_RC(phyr_unpin(r), 0);
	munmap(p, 32 * MiB);
}

static void threads_register_at_once(void)
{
	pthread_t t[THREADS];
	for (uintptr_t i = 0; i < THREADS; i++)
		CHECK(pthread_create(&t[i], NULL, worker, (void *)i) == 0, "pthread_create");
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	CHECK(ring_has_no_table(&ring), "the ring's table outlived every registration");
}

int main(int argc, char **argv)
{
	TEST_MAIN(argc, argv);
	ring_or_skip(&ring, 8);
	region = thp_alloc(REGION);
	RUN(threads_register_at_once);
	RUN(lookup_races_unregister);
	CHECK(ring_has_no_table(&ring), "table left behind by the race");
	CHECK_NOTHING_LOCKED(region, REGION);
	CHECK(vmlck_bytes() == 0, "VmLck %" PRIu64, vmlck_bytes());
	CHECK(huge_bytes_in(region, REGION) == REGION, "only %" PRIu64 " of the region is still huge",
	      huge_bytes_in(region, REGION));
	io_uring_queue_exit(&ring);
	return t_done();
}
