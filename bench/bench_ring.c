/* SPDX-License-Identifier: MIT */
/*
 * bench_ring - ring_register_ranges and fixed I/O through ring_reg_lookup,
 * against plain liburing, measured in one run.  Prints medians and ratios;
 * asserts nothing.
 */
#include "bench.h"

#include <liburing.h>
#include <pthread.h>
#include <sys/wait.h>

static void row(const char *what, double ours, const char *unit, const char *base_name, double base, const char *target)
{
	char ratio[32];
	printf("| %-42s | %9.3f %-4s | %-40s | %9.3f %-4s | %-13s | %-20s |\n", what, ours, unit, base_name, base, unit,
	       ratio_text(ours, base, ratio, sizeof ratio), target);
}

/* ---- 1: registering 1 GiB of THP with a stray 4 KiB page every 128 MiB. */
static void registration(struct io_uring *ring)
{
	char *frag = alloc(GiB, 1), *clean = alloc(GiB, 1);
	for (uint64_t at = 64 * MiB; at < GiB; at += 128 * MiB)
		stray_page(frag, at);
	phyr_t *r;
	int rc = phyr_pin(frag, GiB, PHYR_PIN_WRITE, &r);
	if (rc)
		die("phyr_pin", rc);
	struct iovec frag_iov = { frag, GiB }, clean_iov = { clean, GiB };
	double ours[9], plain[3], floor_[9];
	for (int i = 0; i < 9; i++) {
		ring_reg_t *reg;
		double t = now();
		if ((rc = ring_register_ranges(ring, &r, 1, 0, &reg)))
			die("ring_register_ranges", rc);
		ours[i] = now() - t;
		ring_unregister_ranges(reg);

		t = now();
		if ((rc = io_uring_register_buffers(ring, &clean_iov, 1)))
			die("io_uring_register_buffers", rc);
		floor_[i] = now() - t;
		io_uring_unregister_buffers(ring);
	}
	for (int i = 0; i < 3; i++) {
		double t = now();
		if ((rc = io_uring_register_buffers(ring, &frag_iov, 1)))
			die("io_uring_register_buffers", rc);
		plain[i] = now() - t;
		io_uring_unregister_buffers(ring);
	}
	double o = median(ours, 9) * 1e3;
	row("ring_register_ranges, 1 GiB THP + 8 stray", o, "ms", "io_uring_register_buffers, same memory",
	    median(plain, 3) * 1e3, ">= 30x faster");
	row("", o, "ms", "io_uring_register_buffers, perfect THP", median(floor_, 9) * 1e3, "<= 1.5x slower");
	phyr_unpin(r);
	munmap(frag, GiB);
	munmap(clean, GiB);
}

/* ---- 2: lookups among 16384 buffers. */
static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

static void lookups(struct io_uring *ring)
{
	enum { N = 16384, Q = 1 << 22 };
	size_t len = 2 * N * PAGE;
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	madvise(p, len, MADV_NOHUGEPAGE);
	static phyr_t *r[N];
	for (int i = 0; i < N; i++)
		if (phyr_pin(p + 2 * (uint64_t)i * PAGE, PAGE, PHYR_PIN_WRITE, &r[i]))
			die("phyr_pin", -1);
	ring_reg_t *reg;
	int rc = ring_register_ranges(ring, r, N, 0, &reg);
	if (rc)
		die("ring_register_ranges", rc);
	uint64_t *q = malloc(Q * sizeof *q), *starts = malloc(N * sizeof *starts);
	uint64_t s = 88172645463325252ULL;
	for (int i = 0; i < Q; i++) {
		s ^= s << 13, s ^= s >> 7, s ^= s << 17;
		q[i] = (uint64_t)(uintptr_t)p + 2 * (s % N) * PAGE + (s >> 40) % PAGE;
	}
	for (int i = 0; i < N; i++)
		starts[i] = (uint64_t)(uintptr_t)p + 2 * (uint64_t)i * PAGE;
	double ours[5], libc[5];
	unsigned sink = 0;
	for (int k = 0; k < 5; k++) {
		double t = now();
		for (int i = 0; i < Q; i++) {
			unsigned idx;
			size_t avail;
			ring_reg_lookup(reg, (void *)(uintptr_t)q[i], 512, &idx, &avail);
			sink += idx;
		}
		ours[k] = (now() - t) / Q * 1e9;
		t = now();
		for (int i = 0; i < Q; i++) {
			uint64_t key = q[i] & ~(PAGE - 1);
			uint64_t *hit = bsearch(&key, starts, N, sizeof *starts, cmp_u64);
			sink += hit ? (unsigned)(hit - starts) : 0;
		}
		libc[k] = (now() - t) / Q * 1e9;
	}
	row("ring_reg_lookup, 16384 buffers", median(ours, 5), "ns", "libc bsearch of the buffer starts", median(libc, 5),
	    ">= 1.25x faster");
	if (sink == 42)
		printf("\n");
	ring_unregister_ranges(reg);
	for (int i = 0; i < N; i++)
		phyr_unpin(r[i]);
	free(q);
	free(starts);
	munmap(p, len);
}

/* ---- 3: registering 16384 single-page ranges, against the kernel alone:
 * what libphyr adds is its own reference on every range (an O(log n) update
 * each), so the caller may unpin at once; the mappings are read only if the
 * kernel refuses.  Run after the lookups, whose memory it would disturb. */
static void many_ranges(struct io_uring *ring)
{
	enum { N = 16384 };
	size_t len = 2 * N * PAGE;
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	madvise(p, len, MADV_NOHUGEPAGE);
	static phyr_t *r[N];
	static struct iovec iov[N];
	for (int i = 0; i < N; i++) {
		if (phyr_pin(p + 2 * (uint64_t)i * PAGE, PAGE, PHYR_PIN_WRITE, &r[i]))
			die("phyr_pin", -1);
		iov[i] = (struct iovec){ p + 2 * (uint64_t)i * PAGE, PAGE };
	}
	double t_reg[3], t_plain[3];
	ring_reg_t *reg = NULL;
	int rc;
	for (int k = 0; k < 3; k++) {
		double t = now();
		if ((rc = io_uring_register_buffers(ring, iov, N)))
			die("io_uring_register_buffers", rc);
		t_plain[k] = now() - t;
		io_uring_unregister_buffers(ring);
	}
	for (int k = 0; k < 3; k++) {
		if (reg)
			ring_unregister_ranges(reg);
		double t = now();
		if ((rc = ring_register_ranges(ring, r, N, 0, &reg)))
			die("ring_register_ranges", rc);
		t_reg[k] = now() - t;
	}
	row("ring_register_ranges, 16384 pinned pages", median(t_reg, 3) * 1e3, "ms",
	    "io_uring_register_buffers, same iovecs", median(t_plain, 3) * 1e3, "<= 4x slower");
	ring_unregister_ranges(reg);
	for (int i = 0; i < N; i++)
		phyr_unpin(r[i]);
	munmap(p, len);
}

/* ---- 4: READ_FIXED throughput, through lookups vs. indices by hand. */
static double read_pass(struct io_uring *ring, int fd, char *p, size_t len, size_t chunk, ring_reg_t *reg,
			const unsigned *by_hand)
{
	double t = now();
	size_t done = 0;
	int inflight = 0;
	unsigned n = 0;
	while (done < len || inflight) {
		while (done < len && inflight < 32) {
			struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
			unsigned idx;
			size_t avail = chunk;
			if (reg)
				ring_reg_lookup(reg, p + done, chunk, &idx, &avail);
			else
				idx = by_hand[n];
			io_uring_prep_read_fixed(sqe, fd, p + done, (unsigned)avail, done, (int)idx);
			done += avail;
			inflight++;
			n++;
		}
		io_uring_submit_and_wait(ring, 1);
		struct io_uring_cqe *cqe;
		unsigned head, seen = 0;
		io_uring_for_each_cqe(ring, head, cqe)
		{
			if (cqe->res < 0)
				die("READ_FIXED", cqe->res);
			seen++;
		}
		io_uring_cq_advance(ring, seen);
		inflight -= (int)seen;
	}
	return (double)len / (now() - t) / 1e9;
}

static void throughput(struct io_uring *ring)
{
	size_t len = 256 * MiB, chunk = 128 * 1024;
	char *p = alloc(len, 1);
	/* Stray pages at chunk-aligned spots keep both loops issuing identical
	 * requests (no request crosses a buffer boundary). */
	for (uint64_t at = 64 * MiB; at < len; at += 64 * MiB)
		stray_page(p, at);
	char path[] = "/var/tmp/phyr-bench-XXXXXX";
	int fd = mkstemp(path);
	unlink(path);
	for (size_t off = 0; off < len; off += 1 * MiB)
		if (pwrite(fd, p, 1 * MiB, (off_t)off) != (ssize_t)MiB)
			die("pwrite", errno);
	phyr_t *r;
	ring_reg_t *reg;
	int rc = phyr_pin(p, len, PHYR_PIN_WRITE, &r);
	if (rc || (rc = ring_register_ranges(ring, &r, 1, 0, &reg)))
		die("register", rc);
	/* The hand-written loop: the same buffers, indices worked out up front. */
	unsigned *by_hand = malloc(len / chunk * sizeof *by_hand);
	for (size_t i = 0; i < len / chunk; i++) {
		size_t avail;
		ring_reg_lookup(reg, p + i * chunk, chunk, &by_hand[i], &avail);
		if (avail != chunk)
			die("chunk crosses a buffer", EINVAL);
	}
	double ours[15], plain[15];
	read_pass(ring, fd, p, len, chunk, reg, NULL); /* warm the page cache */
	for (int k = 0; k < 15; k++) {
		/* Alternate which goes first, so drift on a shared machine hits both. */
		if (k % 2) {
			plain[k] = read_pass(ring, fd, p, len, chunk, NULL, by_hand);
			ours[k] = read_pass(ring, fd, p, len, chunk, reg, NULL);
		} else {
			ours[k] = read_pass(ring, fd, p, len, chunk, reg, NULL);
			plain[k] = read_pass(ring, fd, p, len, chunk, NULL, by_hand);
		}
	}
	double o = median(ours, 15), b = median(plain, 15);
	printf("| %-42s | %9.2f GB/s | %-40s | %9.2f GB/s | %-13s | %-20s |\n", "READ_FIXED 128 KiB via ring_reg_lookup", o,
	       "READ_FIXED 128 KiB, indices by hand", b, "", "within 5%");
	printf("| %-42s | %14s | %-40s | %14s | %+12.1f%% | %-20s |\n", "", "", "", "", (o / b - 1) * 100, "");
	ring_unregister_ranges(reg);
	phyr_unpin(r);
	free(by_hand);
	close(fd);
	munmap(p, len);
}

/* ---- 5: PHYR_PIN_LONGTERM against the kernel's own floor for it. */
static void longterm(struct io_uring *ring)
{
	for (int huge = 1; huge >= 0; huge--) {
		char *p = alloc(GiB, huge);
		struct iovec iov = { p, GiB };
		int n = huge ? 9 : 3;
		double ours[9], plain[9];
		for (int i = 0; i < n; i++) {
			phyr_t *r;
			double t = now();
			int rc = phyr_pin(p, GiB, PHYR_PIN_LONGTERM, &r);
			if (rc)
				die("phyr_pin(PHYR_PIN_LONGTERM)", rc);
			ours[i] = now() - t;
			phyr_unpin(r);
			t = now();
			if ((rc = io_uring_register_buffers(ring, &iov, 1)))
				die("io_uring_register_buffers", rc);
			plain[i] = now() - t;
			io_uring_unregister_buffers(ring);
		}
		row(huge ? "PHYR_PIN_LONGTERM, 1 GiB THP" : "PHYR_PIN_LONGTERM, 1 GiB of 4 KiB pages", median(ours, n) * 1e3,
		    "ms", "io_uring_register_buffers, same memory", median(plain, n) * 1e3,
		    huge ? "<= 1.3x slower" : "<= 1.2x slower");
		munmap(p, GiB);
	}
}

/* ---- 5b: PHYR_PIN_HUGE.  The cost: pinning 1 GiB of THP with three stray
 * 4 KiB extents (khugepaged left to them: still eligible) against a plain pin
 * of the same; the gain: registering what each pin got.  Then the whole GiB
 * written before MADV_HUGEPAGE, once. */
static void eligible_strays(char *p)
{
	for (uint64_t at = 100 * MiB; at < GiB; at += 300 * MiB) {
		madvise(p + at, PAGE, MADV_DONTNEED);
		p[at] = 1;
	}
}

static double timed_pin(char *p, size_t len, unsigned flags, phyr_t **r)
{
	double t = now();
	int rc = phyr_pin(p, len, flags, r);
	if (rc)
		die("phyr_pin", rc);
	return now() - t;
}

/* Registers r, times it, and counts the kernel entries the buffers cost
 * (one per folio where a buffer coalesces, one per 4 KiB page elsewhere). */
static double timed_register(struct io_uring *ring, phyr_t *r, uint64_t *entries, int *bufs)
{
	ring_reg_t *reg;
	double t = now();
	int rc = ring_register_ranges(ring, &r, 1, 0, &reg);
	if (rc)
		die("ring_register_ranges", rc);
	t = now() - t;
	struct ring_buf b[64];
	int n = ring_reg_bufs(reg, b, 64);
	*entries = 0;
	for (int i = 0; i < n && i < 64; i++) {
		uint64_t unit = b[i].flags & RING_BUF_COALESCED ? UINT64_C(1) << b[i].page_shift : PAGE;
		*entries += ((b[i].addr + b[i].len + unit - 1) / unit) - b[i].addr / unit;
	}
	*bufs = n;
	ring_unregister_ranges(reg);
	return t;
}

static void huge(struct io_uring *ring)
{
	char *p = alloc(GiB, 1);
	double pin_huge[5], pin_plain[5], reg_huge[5], reg_plain[5];
	uint64_t e_huge = 0, e_plain = 0;
	int b_huge = 0, b_plain = 0;
	char what[64], base[64];
	for (int i = 0; i < 5; i++) {
		phyr_t *r;
		eligible_strays(p);
		pin_plain[i] = timed_pin(p, GiB, PHYR_PIN_WRITE, &r);
		reg_plain[i] = timed_register(ring, r, &e_plain, &b_plain);
		phyr_unpin(r);
		eligible_strays(p);
		pin_huge[i] = timed_pin(p, GiB, PHYR_PIN_WRITE | PHYR_PIN_HUGE, &r);
		reg_huge[i] = timed_register(ring, r, &e_huge, &b_huge);
		phyr_unpin(r);
	}
	row("pin PHYR_PIN_HUGE, 1 GiB THP + 3 stray", median(pin_huge, 5) * 1e3, "ms", "phyr_pin, same memory",
	    median(pin_plain, 5) * 1e3, "~1 ms more");
	snprintf(what, sizeof what, "  registered: %d bufs, %" PRIu64 " entries", b_huge, e_huge);
	snprintf(base, sizeof base, "plain pin registered: %d bufs, %" PRIu64 " entries", b_plain, e_plain);
	row(what, median(reg_huge, 5) * 1e3, "ms", base, median(reg_plain, 5) * 1e3, "");
	munmap(p, GiB);

	/* A GiB written before it was made eligible: all 4 KiB pages. */
	char *q = alloc(GiB, 0);
	madvise(q, GiB, MADV_HUGEPAGE);
	phyr_t *r;
	double plain = timed_pin(q, GiB, PHYR_PIN_WRITE, &r);
	double reg_small = timed_register(ring, r, &e_plain, &b_plain);
	phyr_unpin(r);
	double collapse = timed_pin(q, GiB, PHYR_PIN_WRITE | PHYR_PIN_HUGE, &r);
	double reg_collapsed = timed_register(ring, r, &e_huge, &b_huge);
	phyr_unpin(r);
	row("pin PHYR_PIN_HUGE, 1 GiB of 4 KiB pages", collapse * 1e3, "ms", "phyr_pin, same memory", plain * 1e3,
	    "~2.1 s");
	snprintf(what, sizeof what, "  registered: %d bufs, %" PRIu64 " entries", b_huge, e_huge);
	snprintf(base, sizeof base, "plain pin registered: %d bufs, %" PRIu64 " entries", b_plain, e_plain);
	row(what, reg_collapsed * 1e3, "ms", base, reg_small * 1e3, "");
	munmap(q, GiB);
}

/* ---- 6: registering a long-term range: the buffers are cloned. */
static void clones(struct io_uring *ring)
{
	(void)ring;
	char *p = alloc(GiB, 1), *q = alloc(GiB, 1);
	phyr_t *r;
	int rc = phyr_pin(p, GiB, PHYR_PIN_LONGTERM, &r);
	if (rc)
		die("phyr_pin(PHYR_PIN_LONGTERM)", rc);
	struct iovec iov = { q, GiB };
	enum { RINGS = 8, N = 5 };
	struct io_uring rings[RINGS];
	for (int k = 0; k < RINGS; k++)
		if ((rc = io_uring_queue_init(8, &rings[k], 0)))
			die("io_uring_queue_init", rc);
	double one[N], one_plain[N], eight[N], eight_plain[N];
	for (int i = 0; i < N; i++) {
		ring_reg_t *regs[RINGS];
		double t = now();
		if ((rc = ring_register_ranges(&rings[0], &r, 1, 0, &regs[0])))
			die("ring_register_ranges", rc);
		one[i] = now() - t;
		for (int k = 1; k < RINGS; k++)
			if ((rc = ring_register_ranges(&rings[k], &r, 1, 0, &regs[k])))
				die("ring_register_ranges", rc);
		eight[i] = now() - t;
		for (int k = 0; k < RINGS; k++)
			ring_unregister_ranges(regs[k]);
		t = now();
		if ((rc = io_uring_register_buffers(&rings[0], &iov, 1)))
			die("io_uring_register_buffers", rc);
		one_plain[i] = now() - t;
		for (int k = 1; k < RINGS; k++)
			if ((rc = io_uring_register_buffers(&rings[k], &iov, 1)))
				die("io_uring_register_buffers", rc);
		eight_plain[i] = now() - t;
		for (int k = 0; k < RINGS; k++)
			io_uring_unregister_buffers(&rings[k]);
	}
	row("ring_register_ranges, long-term 1 GiB THP", median(one, N) * 1e3, "ms",
	    "io_uring_register_buffers, perfect THP", median(one_plain, N) * 1e3, ">= 20x faster");
	row("the same into 8 rings", median(eight, N) * 1e3, "ms", "8 io_uring_register_buffers", median(eight_plain, N) * 1e3,
	    ">= 10x faster");
	for (int k = 0; k < RINGS; k++)
		io_uring_queue_exit(&rings[k]);
	phyr_unpin(r);
	munmap(p, GiB);
	munmap(q, GiB);
}

/* fork() and the child's _exit, timed in the parent until fork returns. */
static double fork_time(void)
{
	double t = now();
	pid_t pid = fork();
	if (pid == 0)
		_exit(0);
	double d = now() - t;
	if (pid < 0)
		die("fork", errno);
	waitpid(pid, NULL, 0);
	return d;
}

/* ---- 7: fork() while 1 GiB is pinned. */
static void forks(struct io_uring *ring)
{
	char *p = alloc(GiB, 1);
	double nothing[9], dontfork[9];
	for (int i = 0; i < 9; i++)
		nothing[i] = fork_time();
	phyr_t *r;
	int rc = phyr_pin(p, GiB, PHYR_PIN_LONGTERM | PHYR_PIN_DONTFORK, &r);
	if (rc)
		die("phyr_pin(PHYR_PIN_LONGTERM | PHYR_PIN_DONTFORK)", rc);
	for (int i = 0; i < 9; i++)
		dontfork[i] = fork_time();
	phyr_unpin(r);
	struct iovec iov = { p, GiB };
	if ((rc = io_uring_register_buffers(ring, &iov, 1)))
		die("io_uring_register_buffers", rc);
	double plain = fork_time(); /* seconds: once is enough */
	io_uring_unregister_buffers(ring);
	double d = median(dontfork, 9) * 1e3;
	row("fork(), 1 GiB LONGTERM | DONTFORK", d, "ms", "fork(), 1 GiB io_uring_register_buffers", plain * 1e3,
	    ">= 100x faster");
	row("", d, "ms", "fork(), nothing pinned", median(nothing, 9) * 1e3, "<= 3x slower");
	munmap(p, GiB);
}

/* ---- 8: two threads registering into rings of their own at once. */
struct reg_job { struct io_uring ring; phyr_t *r; ring_reg_t *reg; };
static void *register_job(void *arg)
{
	struct reg_job *j = arg;
	int rc = ring_register_ranges(&j->ring, &j->r, 1, 0, &j->reg);
	if (rc)
		die("ring_register_ranges", rc);
	return NULL;
}

static void parallel(struct io_uring *ring)
{
	(void)ring;
	struct reg_job jobs[2];
	for (int k = 0; k < 2; k++) {
		char *p = alloc(GiB, 0);
		int rc = phyr_pin(p, GiB, PHYR_PIN_WRITE, &jobs[k].r);
		if (rc)
			die("phyr_pin", rc);
		if ((rc = io_uring_queue_init(8, &jobs[k].ring, 0)))
			die("io_uring_queue_init", rc);
	}
	double both[3], serial[3];
	for (int i = 0; i < 3; i++) {
		double t = now();
		for (int k = 0; k < 2; k++)
			register_job(&jobs[k]);
		serial[i] = now() - t;
		for (int k = 0; k < 2; k++)
			ring_unregister_ranges(jobs[k].reg);
		pthread_t th[2];
		t = now();
		for (int k = 0; k < 2; k++)
			pthread_create(&th[k], NULL, register_job, &jobs[k]);
		for (int k = 0; k < 2; k++)
			pthread_join(th[k], NULL);
		both[i] = now() - t;
		for (int k = 0; k < 2; k++)
			ring_unregister_ranges(jobs[k].reg);
	}
	double b = median(both, 3), s = median(serial, 3);
	char target[32];
	snprintf(target, sizeof target, "<= 0.65x (%.2fx)", b / s);
	row("2 threads, 1 GiB of 4 KiB each, own rings", b * 1e3, "ms", "the same one after the other", s * 1e3, target);
	for (int k = 0; k < 2; k++) {
		void *a;
		size_t len;
		phyr_range(jobs[k].r, &a, &len);
		phyr_unpin(jobs[k].r);
		io_uring_queue_exit(&jobs[k].ring);
		munmap(a, len);
	}
}

/* `bench_ring [ROW]`: every row, or only the one named (registration,
 * lookups, many_ranges, throughput, longterm, huge, clones, forks, parallel). */
int main(int argc, char **argv)
{
	static const struct { const char *name; void (*run)(struct io_uring *); } rows[] = {
		{ "registration", registration }, { "lookups", lookups }, { "many_ranges", many_ranges },
		{ "throughput", throughput }, { "longterm", longterm }, { "huge", huge }, { "clones", clones }, { "forks", forks },
		{ "parallel", parallel },
	};
	struct io_uring ring;
	int rc = io_uring_queue_init(64, &ring, 0);
	if (rc < 0)
		die("io_uring_queue_init", rc);
	printf("libphyr %s ring bench: medians; each ratio is against a baseline run in this same process\n\n",
	       phyr_version());
	printf("| %-42s | %14s | %-40s | %14s | %-13s | %-20s |\n", "libphyr", "", "baseline", "", "ratio", "target");
	printf("|--------------------------------------------|----------------|------------------------------------------|"
	       "----------------|---------------|----------------------|\n");
	for (unsigned i = 0; i < sizeof rows / sizeof rows[0]; i++)
		if (argc < 2 || strcmp(argv[1], rows[i].name) == 0)
			rows[i].run(&ring);
	io_uring_queue_exit(&ring);
	return 0;
}
