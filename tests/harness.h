/* SPDX-License-Identifier: MIT */
/*
 * harness.h - what every libphyr C test shares.
 *
 * Each test is one program about one feature, made of cases (RUN): exit 0
 * pass, 77 when every case skipped, 1 fail; a skip always says why.  Kernel state is read back through
 * the kernel's own interfaces, independently of the library: lock state from
 * /proc/self/smaps (VM_LOCKED is "lo" in VmFlags), huge mappings from our own
 * PAGEMAP_SCAN call, PFNs from /proc/self/pagemap.
 */
#ifndef PHYR_TEST_HARNESS_H
#define PHYR_TEST_HARNESS_H

#define _GNU_SOURCE
#include <phyr.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define MiB (UINT64_C(1) << 20)
#define GiB (UINT64_C(1) << 30)
#define KiB (UINT64_C(1) << 10)
#define PAGE UINT64_C(4096)
#define HUGE2M (2 * MiB)

#define SKIP_CODE 77

#define CHECK(cond, ...) do { \
	if (!(cond)) { \
		fprintf(stderr, "FAIL %s:%d: %s\n  ", __FILE__, __LINE__, #cond); \
		fprintf(stderr, __VA_ARGS__); \
		fprintf(stderr, "\n  phyr_last_error: %s\n", phyr_last_error()); \
		exit(1); \
	} \
} while (0)

#define CHECK_RC(expr, want) do { \
	int rc_ = (expr); \
	CHECK(rc_ == (want), "%s returned %d (%s), wanted %d", #expr, rc_, \
	      rc_ < 0 ? strerror(-rc_) : "ok", (want)); \
} while (0)

#define U(p) ((uint64_t)(uintptr_t)(p))

/*
 * Cases.  RUN(case, args...) runs one case of a test program, or every case
 * when the program got no argument (`test_remap unpin_after_mremap_grew_it`
 * runs only that one).  A case passes when it returns; fails at its first
 * CHECK, which ends the program (exit 1); and is skipped when it calls
 * skip() because it cannot exercise its subject on this kernel or machine.
 * A case skips before it pins or opens anything: the program's closing
 * checks (nothing left locked) hold after a skipped case too.
 * skip_part() says that one part of a case did not run while the rest did.
 * Every skip prints one line, "SKIP <case>: <why>", in whatever process it
 * happens; a child's skip() ends the child with 77, and CHECK_CHILD skips
 * the case it runs in.  The program ends with `return t_done();`: it prints
 * "CASES <n> passed", exits 77 when every case it ran was skipped, and fails
 * when it was asked for a case it does not have.
 * tests/run.sh counts both (TEST_MAIN must come first in main).
 */
static int t_argc __attribute__((unused));
static char **t_argv __attribute__((unused));
static const char *t_case;
static int t_in_case, t_in_child, t_passed, t_skipped;
static pid_t t_main_pid;
static jmp_buf t_case_end;

#define TEST_MAIN(argc, argv) (t_argc = (argc), t_argv = (argv), t_main_pid = getpid())
/* setjmp stands alone in its if: C11 allows it nowhere else. */
#define RUN(fn, ...) do { \
	if (t_argc < 2 || strcmp(t_argv[1], #fn) == 0) { \
		if (!setjmp(t_case_end)) { \
			t_begin(#fn); \
			fn(__VA_ARGS__); \
			t_end(); \
		} \
	} \
} while (0)

static inline void t_begin(const char *name)
{
	t_case = name;
	t_in_case = 1;
}

static inline void t_end(void)
{
	t_in_case = 0;
	t_passed++;
}

/* The case is skipped (its line already printed): on to the next one. */
static inline void t_skip_case(void)
{
	fflush(NULL);
	if (t_in_child || getpid() != t_main_pid)
		_exit(SKIP_CODE); /* a child: its parent decides */
	t_skipped++;
	if (t_in_case) {
		t_in_case = 0;
		longjmp(t_case_end, 1);
	}
	/* Outside any case: the rest of the program; what passed still counts. */
	fprintf(stderr, "CASES %d passed\n", t_passed);
	exit(t_passed > 0 ? 0 : SKIP_CODE);
}

static inline void t_say_skip(const char *part, const char *fmt, va_list ap)
{
	fprintf(stderr, "SKIP %s%s: ", t_in_case ? t_case : program_invocation_short_name, part);
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
}

static inline void skip(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static inline void skip(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	t_say_skip("", fmt, ap);
	va_end(ap);
	t_skip_case();
	abort(); /* not reached */
}

static inline void skip_part(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline void skip_part(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	t_say_skip(" (part)", fmt, ap);
	va_end(ap);
}

static inline int t_done(void)
{
	if (t_argc >= 2 && t_passed + t_skipped == 0) {
		fprintf(stderr, "FAIL: %s has no case named %s\n", program_invocation_short_name, t_argv[1]);
		return 1;
	}
	fprintf(stderr, "CASES %d passed\n", t_passed);
	return t_passed == 0 && t_skipped > 0 ? SKIP_CODE : 0;
}

/*
 * How many rounds a stress loop runs: `n` times PHYR_TEST_SCALE (default 1,
 * at least 1).  make check-kernels runs the tests in an emulated guest where
 * code is 10 to 20 times slower, with a scale of 0.1: the same cases, fewer
 * random rounds of each.
 */
static inline int rounds(int n)
{
	const char *s = getenv("PHYR_TEST_SCALE");
	double scale = s ? atof(s) : 1.0;
	int r = (int)(n * (scale > 0 ? scale : 1.0));
	return r > 0 ? r : 1;
}

/* xorshift64: a seeded, repeatable stream for the randomized tests. */
static inline uint64_t next_rand(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* ------------------------------------------------------------- memory */

/* An anonymous mapping of len bytes whose start is align-aligned. */
static inline char *map_aligned(size_t len, size_t align, int prot, int flags)
{
	char *raw = mmap(NULL, len + align, prot, flags | MAP_ANONYMOUS, -1, 0);
	CHECK(raw != MAP_FAILED, "mmap %zu: %s", len + align, strerror(errno));
	char *p = (char *)((U(raw) + align - 1) & ~(uint64_t)(align - 1));
	if (p > raw)
		munmap(raw, (size_t)(p - raw));
	size_t tail = (size_t)(raw + len + align - (p + len));
	if (tail)
		munmap(p + len, tail);
	return p;
}

static inline uint64_t huge_bytes_in(const void *lo, uint64_t len);

/* THP memory, 2 MiB aligned and faulted in; skips when THP cannot be had. */
static inline char *thp_alloc(size_t len)
{
	char *p = map_aligned(len, HUGE2M, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	if (madvise(p, len, MADV_HUGEPAGE) != 0)
		skip("madvise(MADV_HUGEPAGE): %s: this kernel has no THP", strerror(errno));
	memset(p, 0x5a, len);
	if (huge_bytes_in(p, len) != len)
		skip("only %" PRIu64 " of %zu bytes came as THP (THP disabled or memory fragmented)",
		     huge_bytes_in(p, len), len);
	return p;
}

/*
 * A stray base page at p + at inside THP memory: its huge page is split and
 * the page faulted back in on its own.  The 2 MiB block around it is marked
 * MADV_NOHUGEPAGE first, or khugepaged may collapse it back into a huge page
 * in the middle of the test.
 */
static inline void stray_page(char *p, uint64_t at)
{
	char *block = (char *)(U(p + at) & ~(HUGE2M - 1));
	CHECK(madvise(block, HUGE2M, MADV_NOHUGEPAGE) == 0, "MADV_NOHUGEPAGE: %s", strerror(errno));
	CHECK(madvise(p + at, PAGE, MADV_DONTNEED) == 0, "MADV_DONTNEED: %s", strerror(errno));
	p[at] = 1;
}

/*
 * A stray base page at p + at inside THP memory that stays eligible (for
 * PHYR_PIN_HUGE and phyr-inspect): the huge page is split by dropping one
 * page, which faults back in as a base page.  khugepaged may collapse the
 * block again: see khugepaged_collapses().
 */
static inline void eligible_stray(char *p, uint64_t at)
{
	CHECK(madvise(p + at, PAGE, MADV_DONTNEED) == 0, "MADV_DONTNEED: %s", strerror(errno));
	p[at] = 7;
}

/*
 * Huge pages khugepaged has collapsed so far (MADV_COLLAPSE does not count
 * there); 0 when it cannot be read.  A test that leaves stray pages eligible
 * compares it before and after, and runs again when khugepaged moved.
 */
static inline uint64_t khugepaged_collapses(void)
{
	FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/khugepaged/pages_collapsed", "r");
	unsigned long long n = 0;
	if (f) {
		if (fscanf(f, "%llu", &n) != 1)
			n = 0;
		fclose(f);
	}
	return n;
}

/* A case that returns nonzero when khugepaged interfered, run up to three
 * times. */
#define RUN_UNRACED(fn) do { \
	if (t_argc < 2 || strcmp(t_argv[1], #fn) == 0) { \
		if (!setjmp(t_case_end)) { \
			t_begin(#fn); \
			int tries_ = 0; \
			while (fn()) \
				CHECK(++tries_ < 3, #fn ": khugepaged collapsed the test's pages three times running"); \
			t_end(); \
		} \
	} \
} while (0)

/* Base-page memory, faulted in. */
static inline char *base_alloc(size_t len)
{
	char *p = map_aligned(len, HUGE2M, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	CHECK(madvise(p, len, MADV_NOHUGEPAGE) == 0, "MADV_NOHUGEPAGE: %s", strerror(errno));
	memset(p, 0x33, len);
	return p;
}

/* --------------------------------------------- huge mappings: PAGEMAP_SCAN */

struct t_page_region { uint64_t start, end, categories; };
struct t_pm_scan_arg {
	uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
	uint64_t category_inverted, category_mask, category_anyof_mask, return_mask;
};
#define T_PAGE_IS_HUGE (1u << 6)
#define T_PAGEMAP_SCAN _IOWR('f', 16, struct t_pm_scan_arg)

static inline uint64_t huge_bytes_from_smaps(uint64_t lo, uint64_t hi);

/*
 * Bytes of [lo, lo+len) mapped by PMD/PUD entries, by the kernel's word:
 * PAGEMAP_SCAN (Linux 6.7) where the kernel has it, smaps before (the
 * harness must not depend on the feature whose absence it tests).
 */
static inline uint64_t huge_bytes_in(const void *lo, uint64_t len)
{
	int fd = open("/proc/self/pagemap", O_RDONLY);
	CHECK(fd >= 0, "open pagemap: %s", strerror(errno));
	struct t_page_region vec[256];
	uint64_t total = 0, start = U(lo), end = U(lo) + len;
	while (start < end) {
		struct t_pm_scan_arg a = {
			.size = sizeof a, .start = start, .end = end,
			.vec = U(vec), .vec_len = 256,
			.category_mask = T_PAGE_IS_HUGE, .return_mask = T_PAGE_IS_HUGE,
		};
		int n = ioctl(fd, T_PAGEMAP_SCAN, &a);
		if (n < 0 && errno == ENOTTY) {
			close(fd);
			return huge_bytes_from_smaps(U(lo), U(lo) + len);
		}
		CHECK(n >= 0, "PAGEMAP_SCAN: %s", strerror(errno));
		for (int i = 0; i < n; i++)
			total += vec[i].end - vec[i].start;
		if (a.walk_end <= start)
			break;
		start = a.walk_end;
	}
	close(fd);
	return total;
}

/* Whether the 2 MiB block at `block` is one physically contiguous, aligned
 * run of present pages: a PMD-mapped THP, as far as pagemap can tell (root
 * only: PFNs are hidden from everyone else). */
static inline int block_looks_huge(int pagemap, uint64_t block)
{
	uint64_t e[512];
	if (pread(pagemap, e, sizeof e, (off_t)(block / PAGE * 8)) != (ssize_t)sizeof e)
		return 0;
	uint64_t pfn0 = e[0] & ((UINT64_C(1) << 55) - 1);
	if (!(e[0] >> 63) || pfn0 == 0 || pfn0 % 512)
		return 0;
	for (int i = 1; i < 512; i++)
		if (!(e[i] >> 63) || (e[i] & ((UINT64_C(1) << 55) - 1)) != pfn0 + (uint64_t)i)
			return 0;
	return 1;
}

/*
 * Before PAGEMAP_SCAN: smaps counts the PMD-mapped bytes of each VMA
 * exactly (AnonHugePages, ShmemPmdMapped, FilePmdMapped).  A VMA wholly
 * inside the span counts whole; one the span cuts is counted block by block
 * where PFNs show THPs (root), and by its total otherwise.
 */
static inline uint64_t huge_bytes_from_smaps(uint64_t lo, uint64_t hi)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	CHECK(f != NULL, "open smaps: %s", strerror(errno));
	int pagemap = open("/proc/self/pagemap", O_RDONLY);
	char line[1024];
	uint64_t total = 0, vs = 0, ve = 0, pmd = 0, hugetlb = 0;
	int in = 0;
	for (;;) {
		char *got = fgets(line, sizeof line, f);
		uint64_t a, b, kb;
		int header = got && sscanf(line, "%" SCNx64 "-%" SCNx64, &a, &b) == 2 && strchr(line, ':') > strchr(line, ' ');
		if (!got || header) {
			if (in) {
				uint64_t s = vs > lo ? vs : lo, e = ve < hi ? ve : hi;
				uint64_t held = pmd + hugetlb;
				if (s <= vs && e >= ve) {
					total += held;
				} else if (held) {
					uint64_t counted = 0;
					for (uint64_t blk = (s + HUGE2M - 1) & ~(HUGE2M - 1); blk + HUGE2M <= e; blk += HUGE2M)
						counted += pagemap >= 0 && block_looks_huge(pagemap, blk) ? HUGE2M : 0;
					if (!counted && held >= ve - vs)
						counted = e - s; /* no PFNs, but the VMA is huge throughout */
					total += counted < held ? counted : held;
				}
			}
			if (!got)
				break;
			vs = a, ve = b, pmd = hugetlb = 0;
			in = b > lo && a < hi;
			continue;
		}
		if (sscanf(line, "AnonHugePages: %" SCNu64, &kb) == 1 || sscanf(line, "ShmemPmdMapped: %" SCNu64, &kb) == 1 ||
		    sscanf(line, "FilePmdMapped: %" SCNu64, &kb) == 1)
			pmd += kb * 1024;
		else if (sscanf(line, "Private_Hugetlb: %" SCNu64, &kb) == 1 || sscanf(line, "Shared_Hugetlb: %" SCNu64, &kb) == 1)
			hugetlb += kb * 1024;
	}
	fclose(f);
	if (pagemap >= 0)
		close(pagemap);
	return total;
}

/* ------------------------------------------------ lock state: smaps */

struct span { uint64_t lo, hi; };

/*
 * The VM_LOCKED parts of [lo, hi), merged and clipped, as the kernel reports
 * them in /proc/self/smaps.  Returns how many spans were stored.
 */
static inline int locked_spans(const void *lo_, uint64_t len, struct span *out, int max)
{
	uint64_t lo = U(lo_), hi = U(lo_) + len;
	FILE *f = fopen("/proc/self/smaps", "r");
	CHECK(f != NULL, "open smaps: %s", strerror(errno));
	char line[1024];
	uint64_t vs = 0, ve = 0;
	int n = 0;
	while (fgets(line, sizeof line, f)) {
		uint64_t a, b;
		char c;
		if (sscanf(line, "%" SCNx64 "-%" SCNx64 " %c", &a, &b, &c) == 3 && strchr(line, ':') != line) {
			vs = a;
			ve = b;
			continue;
		}
		if (strncmp(line, "VmFlags:", 8) != 0 || !strstr(line, " lo"))
			continue;
		uint64_t s = vs > lo ? vs : lo, e = ve < hi ? ve : hi;
		if (s >= e)
			continue;
		if (n > 0 && out[n - 1].hi == s)
			out[n - 1].hi = e;
		else if (n < max)
			out[n++] = (struct span){ s, e };
	}
	fclose(f);
	return n;
}

/* Asserts that exactly [want_lo, want_hi) of [lo, lo+len) is locked. */
#define CHECK_LOCKED_EXACTLY(base_, len_, want_lo, want_hi) do { \
	struct span s_[16]; \
	int n_ = locked_spans((base_), (len_), s_, 16); \
	CHECK(n_ == 1 && s_[0].lo == U(want_lo) && s_[0].hi == U(want_hi), \
	      "locked: %d spans, first [%#" PRIx64 ", %#" PRIx64 "), wanted [%#" PRIx64 ", %#" PRIx64 ")", \
	      n_, n_ ? s_[0].lo : 0, n_ ? s_[0].hi : 0, U(want_lo), U(want_hi)); \
} while (0)

#define CHECK_NOTHING_LOCKED(base_, len_) do { \
	struct span s_[16]; \
	int n_ = locked_spans((base_), (len_), s_, 16); \
	CHECK(n_ == 0, "%d locked spans remain, first [%#" PRIx64 ", %#" PRIx64 ")", \
	      n_, s_[0].lo, s_[0].hi); \
} while (0)

/* A "Key:  N kB" line of /proc/self/status, in bytes (0 when absent). */
static inline uint64_t status_bytes(const char *key)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	uint64_t kb = 0;
	size_t n = strlen(key);
	while (f && fgets(line, sizeof line, f))
		if (strncmp(line, key, n) == 0 && sscanf(line + n, " %" SCNu64, &kb) == 1)
			break;
	if (f)
		fclose(f);
	return kb * 1024;
}

/* VmLck: memory mlock()ed. */
static inline uint64_t vmlck_bytes(void) { return status_bytes("VmLck:"); }

/* VmPin: memory the kernel holds pinned (io_uring buffers, libphyr's
 * long-term pins); pins are taken synchronously. */
static inline uint64_t vmpin_bytes(void) { return status_bytes("VmPin:"); }

/*
 * VmPin once it has come down to `want`, or after 20 s: the kernel drops
 * released buffers' pins asynchronously (an exited ring in a worker; on 6.1
 * an emptied slot in delayed work).  Waits only for that, asserts nothing.
 */
static inline uint64_t vmpin_reaches(uint64_t want)
{
	uint64_t v = vmpin_bytes();
	for (int i = 0; i < 800 && v != want; i++) {
		usleep(25000);
		v = vmpin_bytes();
	}
	return v;
}

/* ---------------------------------------------------------- privilege */

/* Whether the effective capability set holds capability bit `cap`. */
static inline int has_cap(int cap)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	unsigned long long eff = 0;
	while (f && fgets(line, sizeof line, f))
		if (sscanf(line, "CapEff: %llx", &eff) == 1)
			break;
	if (f)
		fclose(f);
	return (eff >> cap) & 1;
}
#define T_CAP_IPC_LOCK 14
#define T_CAP_SYS_ADMIN 21

/* Physical address of one page by /proc/self/pagemap, 0 when hidden. */
static inline uint64_t phys_of(const void *addr)
{
	int fd = open("/proc/self/pagemap", O_RDONLY);
	uint64_t e = 0;
	CHECK(fd >= 0 && pread(fd, &e, 8, (off_t)(U(addr) / PAGE * 8)) == 8, "pagemap read");
	close(fd);
	uint64_t pfn = e & ((UINT64_C(1) << 55) - 1);
	return pfn ? pfn * PAGE + U(addr) % PAGE : 0;
}

/* Segments of r, checked to tile [addr, addr+len) in order. */
static inline int segs_of(phyr_t *r, struct phyr_seg *segs, int max)
{
	void *a;
	size_t len;
	CHECK_RC(phyr_range(r, &a, &len), 0);
	int n = phyr_segs(r, segs, (unsigned)max);
	CHECK(n >= 1 && n <= max, "phyr_segs returned %d", n);
	uint64_t at = U(a);
	for (int i = 0; i < n; i++) {
		CHECK(segs[i].addr == at && segs[i].len > 0, "segment %d at %#" PRIx64 " len %#" PRIx64 ", expected at %#" PRIx64,
		      i, segs[i].addr, segs[i].len, at);
		at += segs[i].len;
	}
	CHECK(at == U(a) + len, "segments end at %#" PRIx64 ", range at %#" PRIx64, at, U(a) + len);
	return n;
}

/* ------------------------------------------------------------- seccomp */

/*
 * Makes the calling thread (and what it forks) get -err from each system
 * call in nrs, as container runtimes' seccomp profiles do.  Irreversible:
 * call it in a child.
 */
static inline void deny_syscalls(const int *nrs, int n, int err)
{
	struct sock_filter f[64];
	int k = 0;
	CHECK(n <= 28, "too many syscalls to deny");
	f[k++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
	f[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0);
	f[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
	f[k++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
	for (int i = 0; i < n; i++) {
		f[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)nrs[i], 0, 1);
		f[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ((unsigned)err & SECCOMP_RET_DATA));
	}
	f[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
	struct sock_fprog prog = { .len = (unsigned short)k, .filter = f };
	CHECK(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0, "PR_SET_NO_NEW_PRIVS: %s", strerror(errno));
	CHECK(syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) == 0, "seccomp: %s", strerror(errno));
}

/* Runs fn in a child process; returns its exit status, or 128 + signal. */
static inline int in_child(void (*fn)(void *), void *arg)
{
	fflush(NULL);
	pid_t pid = fork();
	CHECK(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		t_in_child = 1;
		fn(arg);
		fflush(NULL);
		_exit(0);
	}
	int st;
	CHECK(waitpid(pid, &st, 0) == pid, "waitpid: %s", strerror(errno));
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Runs fn in a child, which must pass; a child that skipped skips the case. */
#define CHECK_CHILD(fn, arg) do { \
	int st_ = in_child((fn), (arg)); \
	if (st_ == SKIP_CODE) \
		t_skip_case(); \
	CHECK(st_ == 0, "child %s %s %d", #fn, st_ > 128 ? "killed by signal" : "exited", st_ > 128 ? st_ - 128 : st_); \
} while (0)

/* RUN for a case that runs in a child of its own (a seccomp filter, a
 * descriptor table it empties): fn(void *) gets arg. */
#define RUN_CHILD(fn, arg) do { \
	if (t_argc < 2 || strcmp(t_argv[1], #fn) == 0) { \
		if (!setjmp(t_case_end)) { \
			t_begin(#fn); \
			CHECK_CHILD(fn, arg); \
			t_end(); \
		} \
	} \
} while (0)

#endif
