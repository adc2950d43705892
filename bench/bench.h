/* SPDX-License-Identifier: MIT */
/*
 * bench.h - what the benchmark programs share: a clock, medians, memory.
 * Benchmarks print medians and ratios against a baseline measured in the
 * same run; they assert nothing (these machines are shared and noisy).
 */
#ifndef PHYR_BENCH_H
#define PHYR_BENCH_H

#define _GNU_SOURCE
#include <phyr.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define MiB (UINT64_C(1) << 20)
#define GiB (UINT64_C(1) << 30)
#define PAGE UINT64_C(4096)
#define HUGE2M (2 * MiB)

static inline double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static inline int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static inline double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof *v, cmp_double);
	return v[n / 2];
}

static inline void die(const char *what, int rc)
{
	fprintf(stderr, "bench: %s: %s (%s)\n", what, strerror(rc < 0 ? -rc : rc), phyr_last_error());
	exit(1);
}

/* "12.3x faster" / "1.05x slower": how ours compares to the baseline. */
static inline const char *ratio_text(double ours, double base, char *buf, size_t len)
{
	if (base >= ours)
		snprintf(buf, len, "%.1fx faster", base / ours);
	else
		snprintf(buf, len, "%.2fx slower", ours / base);
	return buf;
}

/* The title and the head of the table bench_pin and bench_numa print. */
static inline void table_header(const char *kind)
{
	printf("libphyr %s %sbench: medians; each ratio is against a baseline run in this same process\n\n",
	       phyr_version(), kind);
	printf("| %-44s | %13s | %-34s | %13s | %-14s | %-16s |\n", "libphyr", "time", "baseline", "time", "ratio",
	       "target");
	printf("|%s|%s|%s|%s|%s|%s|\n", "----------------------------------------------", "---------------",
	       "------------------------------------", "---------------", "----------------", "------------------");
}

/* One row of that table: times in seconds, shown in ms, or in us where
 * `micro` (so the smallest ones keep their digits). */
static inline void table_row(const char *what, double ours, const char *base_name, double base, const char *target,
			     int micro)
{
	char r[32];
	double scale = micro ? 1e6 : 1e3;
	int digits = micro ? 1 : 3;
	const char *unit = micro ? "us" : "ms";
	printf("| %-44s | %10.*f %s | %-34s | %10.*f %s | %-14s | %-16s |\n", what, digits, ours * scale, unit, base_name,
	       digits, base * scale, unit, ratio_text(ours, base, r, sizeof r), target);
}

/* Anonymous memory, 2 MiB aligned, THP or base pages, faulted in. */
static inline char *alloc(size_t len, int huge)
{
	char *raw = mmap(NULL, len + HUGE2M, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (raw == MAP_FAILED)
		die("mmap", errno);
	char *p = (char *)(((uintptr_t)raw + HUGE2M - 1) & ~(uintptr_t)(HUGE2M - 1));
	madvise(p, len, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
	memset(p, 0x11, len);
	return p;
}

/* A stray 4 KiB page in THP memory, in a 2 MiB block khugepaged must leave
 * alone (else it may collapse it back mid-run and flatter the baseline). */
static inline void stray_page(char *p, uint64_t at)
{
	madvise((char *)((uintptr_t)(p + at) & ~(uintptr_t)(HUGE2M - 1)), HUGE2M, MADV_NOHUGEPAGE);
	madvise(p + at, PAGE, MADV_DONTNEED);
	p[at] = 1;
}

#endif
