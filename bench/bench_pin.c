/* SPDX-License-Identifier: MIT */
/*
 * bench_pin - libphyr against the baselines it replaces, measured in one run.
 *
 * Prints a table of medians and ratios; asserts nothing (the machines are
 * shared and noisy).  Needs root for the physical-address rows.
 */
#include "bench.h"

static void row(const char *what, double ours, const char *base_name, double base, const char *target)
{
	table_row(what, ours, base_name, base, target, 0);
}

/* ---- 1: PHYR_PIN_PHYS of 1 GiB THP against DPDK-style per-page lookups. */
static void phys_pin(void)
{
	char *p = alloc(GiB, 1);
	int fd = open("/proc/self/pagemap", O_RDONLY);
	uint64_t e = 0;
	if (pread(fd, &e, 8, (off_t)((uintptr_t)p / PAGE * 8)) != 8 || (e & ((UINT64_C(1) << 55) - 1)) == 0) {
		printf("| %-44s | needs CAP_SYS_ADMIN (run as root): skipped |\n", "pin 1 GiB THP with PHYR_PIN_PHYS");
		munmap(p, GiB);
		close(fd);
		return;
	}
	static struct phyr_seg segs[1024];
	double ours[7], per_page[3], floor_[7];
	for (int i = 0; i < 7; i++) {
		phyr_t *r;
		double t = now();
		int rc = phyr_pin(p, GiB, PHYR_PIN_PHYS, &r);
		if (rc)
			die("phyr_pin", rc);
		int n = phyr_segs(r, segs, 1024);
		ours[i] = now() - t;
		if (n < 1)
			die("phyr_segs", n);
		phyr_unpin(r);

		t = now();
		mlock(p, GiB);
		for (uint64_t off = 0; off < GiB; off += HUGE2M)
			if (pread(fd, &e, 8, (off_t)(((uintptr_t)p + off) / PAGE * 8)) != 8)
				die("pread", -errno);
		floor_[i] = now() - t;
		munlock(p, GiB);
	}
	for (int i = 0; i < 3; i++) {
		double t = now();
		mlock(p, GiB);
		for (uint64_t off = 0; off < GiB; off += PAGE)
			if (pread(fd, &e, 8, (off_t)(((uintptr_t)p + off) / PAGE * 8)) != 8)
				die("pread", -errno);
		per_page[i] = now() - t;
		munlock(p, GiB);
	}
	double o = median(ours, 7);
	row("pin 1 GiB THP, PHYR_PIN_PHYS, + phyr_segs", o, "mlock + pagemap read per 4 KiB", median(per_page, 3),
	    ">= 100x faster");
	row("", o, "mlock + pagemap read per 2 MiB", median(floor_, 7), "<= 2x slower");
	close(fd);
	munmap(p, GiB);
}

/* ---- 2: 1 GiB of base pages without PHYR_PIN_PHYS against bare mlock. */
static void base_pin(void)
{
	char *p = alloc(GiB, 0);
	double ours[5], raw[5];
	for (int i = 0; i < 5; i++) {
		double t = now();
		if (mlock(p, GiB))
			die("mlock", -errno);
		raw[i] = now() - t;
		munlock(p, GiB);

		phyr_t *r;
		t = now();
		int rc = phyr_pin(p, GiB, 0, &r);
		ours[i] = now() - t;
		if (rc)
			die("phyr_pin", rc);
		phyr_unpin(r);
	}
	row("pin 1 GiB of 4 KiB pages", median(ours, 5), "mlock of the same memory", median(raw, 5), "<= 1.2x slower");
	munmap(p, GiB);
}

/* ---- 3: split and unpin per operation at 1,000 and 100,000 live ranges.
 * A 1 GiB THP range is cut into n pieces; then a batch of distinct random
 * pieces is split in its middle and the tails unpinned: the count of live
 * ranges stays about n, and no lock call is made (the folio at each cut stays
 * covered by the head), so this is libphyr's bookkeeping alone. */
static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static uint64_t next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static void split_unpin(char *p, int n, double *split_ns, double *unpin_ns)
{
	int batch = n < 10000 ? n : 10000;
	phyr_t **h = malloc(sizeof *h * (size_t)n), **tails = malloc(sizeof *tails * (size_t)batch);
	int *pick = malloc(sizeof *pick * (size_t)n);
	int rc = phyr_pin(p, GiB, 0, &h[0]);
	if (rc)
		die("phyr_pin", rc);
	uint64_t step = GiB / (uint64_t)n;
	for (int i = 1; i < n; i++)
		if ((rc = phyr_split(h[i - 1], step, &h[i])))
			die("phyr_split", rc);
	for (int i = 0; i < n; i++)
		pick[i] = i;
	for (int i = n - 1; i > 0; i--) {
		int j = (int)(next_rand() % (uint64_t)(i + 1)), x = pick[i];
		pick[i] = pick[j];
		pick[j] = x;
	}
	double t = now();
	for (int k = 0; k < batch; k++)
		if ((rc = phyr_split(h[pick[k]], step / 2, &tails[k])))
			die("phyr_split", rc);
	*split_ns = (now() - t) / batch * 1e9;
	t = now();
	for (int k = 0; k < batch; k++)
		if ((rc = phyr_unpin(tails[k])))
			die("phyr_unpin", rc);
	*unpin_ns = (now() - t) / batch * 1e9;
	for (int i = 0; i < n; i++)
		phyr_unpin(h[i]);
	free(h);
	free(tails);
	free(pick);
}

static void scaling(void)
{
	char *p = alloc(GiB, 1);
	enum { ROUNDS = 5 };
	double s1[ROUNDS], u1[ROUNDS], s2[ROUNDS], u2[ROUNDS];
	for (int r = 0; r < ROUNDS; r++) {
		split_unpin(p, 1000, &s1[r], &u1[r]);
		split_unpin(p, 100000, &s2[r], &u2[r]);
	}
	char ratio[32];
	double a = median(s2, ROUNDS), b = median(s1, ROUNDS);
	printf("| %-44s | %10.0f ns | %-34s | %10.0f ns | %-14s | %-16s |\n", "phyr_split, 100,000 live ranges", a,
	       "phyr_split, 1,000 live ranges", b, ratio_text(a, b, ratio, sizeof ratio), "<= 1.3x slower");
	a = median(u2, ROUNDS), b = median(u1, ROUNDS);
	printf("| %-44s | %10.0f ns | %-34s | %10.0f ns | %-14s | %-16s |\n", "phyr_unpin, 100,000 live ranges", a,
	       "phyr_unpin, 1,000 live ranges", b, ratio_text(a, b, ratio, sizeof ratio), "<= 1.3x slower");
	munmap(p, GiB);
}

/* ---- 3b: 16,384 single-page pins and their unpins against mlock and
 * munlock of the same pages, rounds interleaved. */
static void pin_unpin(void)
{
	enum { N = 16384, ROUNDS = 7 };
	char *p = alloc(2 * N * PAGE, 0);
	static phyr_t *h[N];
	double ours[ROUNDS], raw[ROUNDS];
	for (int r = 0; r < ROUNDS; r++) {
		double t = now();
		for (int i = 0; i < N; i++)
			if (mlock(p + 2 * (uint64_t)i * PAGE, PAGE))
				die("mlock", -errno);
		for (int i = 0; i < N; i++)
			munlock(p + 2 * (uint64_t)i * PAGE, PAGE);
		raw[r] = now() - t;
		t = now();
		for (int i = 0; i < N; i++) {
			int rc = phyr_pin(p + 2 * (uint64_t)i * PAGE + 8, 100, 0, &h[i]);
			if (rc)
				die("phyr_pin", rc);
		}
		for (int i = 0; i < N; i++)
			phyr_unpin(h[i]);
		ours[r] = now() - t;
	}
	row("16384 single-page pins + unpins", median(ours, ROUNDS), "mlock + munlock of the same pages",
	    median(raw, ROUNDS), "<= 2.0x slower");
	munmap(p, 2 * N * PAGE);
}

/* ---- 4: 16,384 single-page pins in a process with ~33,000 mappings
 * (PHYR_BENCH_PINS=n pins fewer, for a slow emulated kernel). */
static void many_pins(void)
{
	enum { MAX = 16384 };
	int N = MAX;
	const char *env = getenv("PHYR_BENCH_PINS");
	if (env && atoi(env) >= 2048 && atoi(env) <= MAX)
		N = atoi(env);
	char *p = alloc(2 * N * PAGE, 0);
	char *q = alloc(2 * N * PAGE, 0);
	static phyr_t *h[MAX];
	/* The baseline first, undone before ours: both together would pass
	 * vm.max_map_count. */
	double t = now();
	for (int i = 0; i < N; i++)
		if (mlock(q + 2 * (uint64_t)i * PAGE, PAGE))
			die("mlock", -errno);
	double t_raw = now() - t;
	munlock(q, 2 * N * PAGE);

	double t0 = now(), first = 0, mark = 0;
	for (int i = 0; i < N; i++) {
		int rc = phyr_pin(p + 2 * (uint64_t)i * PAGE + 8, 100, 0, &h[i]);
		if (rc)
			die("phyr_pin", rc);
		if (i == 1023)
			mark = now(); /* the first 1,024 warm caches up */
		if (i == 2047)
			first = now() - mark;
	}
	double t_ours = now() - t0;
	/* The last 1,024 again, now that the process has its ~33,000 mappings. */
	for (int i = N - 1024; i < N; i++)
		phyr_unpin(h[i]);
	t = now();
	for (int i = N - 1024; i < N; i++)
		if (phyr_pin(p + 2 * (uint64_t)i * PAGE + 8, 100, 0, &h[i]))
			die("phyr_pin", -1);
	double t_last = now() - t;
	char what[64], base[64], last[64];
	snprintf(what, sizeof what, "%d single-page pins (~%d mappings)", N, 2 * N);
	snprintf(base, sizeof base, "%d single-page mlocks", N);
	snprintf(last, sizeof last, "  per pin, last 1,024 (%d mappings)", 2 * N);
	row(what, t_ours, base, t_raw, N == MAX ? "< 500 ms total" : "");
	printf("| %-44s | %10.0f ns | %-34s | %10.0f ns | %-14s | %-16s |\n", last,
	       t_last / 1024 * 1e9, "per pin, pins 1,025 to 2,048", first / 1024 * 1e9, "", "flat");
	for (int i = 0; i < N; i++)
		phyr_unpin(h[i]);
	munmap(p, 2 * N * PAGE);
	munmap(q, 2 * N * PAGE);
}

/* `bench_pin [ROW]`: every row, or only the one named (phys_pin, base_pin,
 * scaling, pin_unpin, many_pins). */
int main(int argc, char **argv)
{
	static const struct { const char *name; void (*run)(void); } rows[] = {
		{ "phys_pin", phys_pin }, { "base_pin", base_pin }, { "scaling", scaling }, { "pin_unpin", pin_unpin },
		{ "many_pins", many_pins },
	};
	table_header("");
	for (unsigned i = 0; i < sizeof rows / sizeof rows[0]; i++)
		if (argc < 2 || strcmp(argv[1], rows[i].name) == 0)
			rows[i].run();
	return 0;
}
