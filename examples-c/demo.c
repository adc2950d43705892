/*
 * demo - what libphyr sees in a realistic buffer.
 *
 * Makes a 64 MiB transparent-huge-page buffer with one stray 4 KiB page in
 * it (the kind a partial MADV_DONTNEED or a COW break leaves behind), pins it
 * whole and prints its segments: which runs are huge, which are base pages,
 * and (as root) where they sit in physical memory.
 *
 *   make demo            or   ./demo [size in MiB]
 */
#define _GNU_SOURCE
#include <phyr.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define MiB (UINT64_C(1) << 20)

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static const char *size_text(uint64_t n, char *buf, size_t len)
{
	if (n >= MiB && n % MiB == 0)
		snprintf(buf, len, "%llu MiB", (unsigned long long)(n / MiB));
	else if (n >= 1024 && n % 1024 == 0)
		snprintf(buf, len, "%llu KiB", (unsigned long long)(n / 1024));
	else if (n >= 1024)
		snprintf(buf, len, "%.1f KiB", (double)n / 1024);
	else
		snprintf(buf, len, "%llu B", (unsigned long long)n);
	return buf;
}

static const char *flags_text(uint32_t f, char *buf, size_t len)
{
	snprintf(buf, len, "%s%s%s%s", f & PHYR_SEG_HUGE ? "huge " : "", f & PHYR_SEG_HUGETLB ? "hugetlb " : "",
		 f & PHYR_SEG_SHARED ? "shared " : "", f & PHYR_SEG_NOFOLIO ? "no-folio " : "");
	if (!f)
		snprintf(buf, len, "-");
	return buf;
}

static uint64_t vmlck(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	unsigned long long kb = 0;
	while (f && fgets(line, sizeof line, f))
		if (sscanf(line, "VmLck: %llu", &kb) == 1)
			break;
	if (f)
		fclose(f);
	return kb * 1024;
}

int main(int argc, char **argv)
{
	uint64_t size = (argc > 1 ? strtoull(argv[1], NULL, 0) : 64) * MiB;
	if (size < 8 * MiB) {
		fprintf(stderr, "demo: size must be at least 8 MiB\n");
		return 2;
	}
	uint64_t stray = size / 8 * 5 / (2 * MiB) * (2 * MiB);

	char *raw = mmap(NULL, size + 2 * MiB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (raw == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	char *buf = (char *)(((uintptr_t)raw + 2 * MiB - 1) & ~(uintptr_t)(2 * MiB - 1));
	madvise(buf, size, MADV_HUGEPAGE);
	memset(buf, 0xab, size);
	madvise(buf + stray, 4096, MADV_DONTNEED); /* one stray base page */
	buf[stray] = 1;

	char a[32], b[32];
	printf("libphyr %s demo: a %s THP buffer with one stray 4 KiB page at +%s\n\n", phyr_version(),
	       size_text(size, a, sizeof a), size_text(stray, b, sizeof b));

	phyr_t *r;
	unsigned flags = PHYR_PIN_WRITE | PHYR_PIN_PHYS;
	double t = now_ms();
	int rc = phyr_pin(buf, size, flags, &r);
	if (rc == -EPERM) {
		printf("(no physical addresses: %s)\n\n", phyr_last_error());
		flags &= ~PHYR_PIN_PHYS;
		t = now_ms();
		rc = phyr_pin(buf, size, flags, &r);
	}
	double took = now_ms() - t;
	if (rc < 0) {
		fprintf(stderr, "phyr_pin: %s: %s\n", strerror(-rc), phyr_last_error());
		return 1;
	}

	int n = phyr_segs(r, NULL, 0);
	struct phyr_seg *segs = calloc((size_t)n, sizeof *segs);
	if (!segs || phyr_segs(r, segs, (unsigned)n) != n) {
		fprintf(stderr, "phyr_segs failed\n");
		return 1;
	}
	printf("pinned [%p, +%s) in %.2f ms: %d segment%s%s\n\n", (void *)buf, size_text(size, a, sizeof a), took, n,
	       n == 1 ? "" : "s", flags & PHYR_PIN_PHYS ? " (each one physically contiguous)" : "");

	/* One row per run of one page size and flag set; with physical addresses
	 * a run holds as many segments as it has physically separate pieces. */
	printf("  %-16s  %10s  %7s  %9s  %-18s  %s\n", "address", "length", "page", "segments", "first physical",
	       "flags");
	uint64_t huge = 0;
	for (int i = 0; i < n;) {
		int j = i;
		uint64_t len = 0;
		while (j < n && segs[j].page_shift == segs[i].page_shift && segs[j].flags == segs[i].flags)
			len += segs[j++].len;
		if (segs[i].flags & PHYR_SEG_HUGE)
			huge += len;
		char phys[24], l[16], page[16], fl[48];
		if (segs[i].phys == PHYR_PHYS_UNKNOWN)
			snprintf(phys, sizeof phys, "unknown");
		else
			snprintf(phys, sizeof phys, "%#llx", (unsigned long long)segs[i].phys);
		printf("  %#-16llx  %10s  %7s  %9d  %-18s  %s\n", (unsigned long long)segs[i].addr, size_text(len, l, sizeof l),
		       size_text(UINT64_C(1) << segs[i].page_shift, page, sizeof page), j - i, phys,
		       flags_text(segs[i].flags, fl, sizeof fl));
		i = j;
	}
	char c[32];
	printf("\n%s of %s is huge; %s locked (VmLck); huge mappings stay huge\n", size_text(huge, a, sizeof a),
	       size_text(size, b, sizeof b), size_text(vmlck(), c, sizeof c));
	phyr_unpin(r);
	printf("unpinned: %s locked\n", size_text(vmlck(), a, sizeof a));
	free(segs);
	munmap(raw, size + 2 * MiB);
	return 0;
}
