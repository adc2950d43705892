/* SPDX-License-Identifier: MIT */
/*
 * demo - why a buffer registration takes 87 ms, and how not to.
 *
 * Makes a realistic 1 GiB buffer: transparent huge pages with a few stray
 * 4 KiB pages in it (what a partial MADV_DONTNEED, a COW break or a late
 * fault leaves behind).  Pins it, shows how it is backed, shows the plan
 * libphyr registers it by (which buffers coalesce, how many kernel entries
 * each costs, the lock charge), registers it, reads a generated file into it
 * through fixed buffers with the data checked, and times the registration
 * against plain io_uring_register_buffers() of the same memory.  Then pins
 * it long-term (the kernel's own pin), registers it into 4 rings by cloning,
 * times fork() with and without PHYR_PIN_DONTFORK, and (as root) shows that
 * compaction moves none of its physical pages.  In between, PHYR_PIN_HUGE
 * repairs the backing: the stray extents collapsed into huge pages.
 *
 *   make demo            or   ./demo [size in MiB] [--pause SECONDS]
 *
 * --pause keeps the first registration (and a plain one of the same memory
 * in a second ring) alive for that long, for phyr-inspect(1) to look at.
 */
#define _GNU_SOURCE
#include <phyr.h>

#include <errno.h>
#include <liburing.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MiB (UINT64_C(1) << 20)
#define CHUNK (3 * MiB) /* not a divisor of 2 MiB: some requests cross buffer edges */

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static const char *size_text(uint64_t n, char *buf, size_t len)
{
	if (n >= 1024 * MiB && n % (1024 * MiB) == 0)
		snprintf(buf, len, "%llu GiB", (unsigned long long)(n >> 30));
	else if (n >= MiB && n % MiB == 0)
		snprintf(buf, len, "%llu MiB", (unsigned long long)(n / MiB));
	else if (n >= MiB)
		snprintf(buf, len, "%.1f MiB", (double)n / MiB);
	else if (n >= 1024 && n % 1024 == 0)
		snprintf(buf, len, "%llu KiB", (unsigned long long)(n / 1024));
	else
		snprintf(buf, len, "%llu B", (unsigned long long)n);
	return buf;
}

static void die(const char *what, int rc)
{
	fprintf(stderr, "demo: %s: %s\n  %s\n", what, strerror(rc < 0 ? -rc : rc), phyr_last_error());
	exit(1);
}

/* VmPin of /proc/self/status: memory the kernel holds pinned, in bytes. */
static uint64_t vmpin(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	unsigned long long kb = 0;
	while (f && fgets(line, sizeof line, f))
		if (sscanf(line, "VmPin: %llu", &kb) == 1)
			break;
	if (f)
		fclose(f);
	return kb * 1024;
}

static double fork_ms(void)
{
	double t = now_ms();
	pid_t pid = fork();
	if (pid == 0)
		_exit(0);
	double d = now_ms() - t;
	if (pid < 0)
		die("fork", errno);
	waitpid(pid, NULL, 0);
	return d;
}

/* Pages of r whose physical address pagemap now reports differently from
 * phyr_segs (one check per page of each segment's page size). */
static uint64_t moved_pages(phyr_t *r, uint64_t *checked)
{
	struct phyr_seg segs[8192];
	int n = phyr_segs(r, segs, 8192), fd = open("/proc/self/pagemap", O_RDONLY);
	uint64_t moved = 0;
	*checked = 0;
	for (int i = 0; i < n && i < 8192 && fd >= 0; i++) {
		uint64_t step = UINT64_C(1) << segs[i].page_shift;
		for (uint64_t at = segs[i].addr; at < segs[i].addr + segs[i].len; at = (at & ~(step - 1)) + step) {
			uint64_t e = 0;
			if (pread(fd, &e, 8, (off_t)(at / 4096 * 8)) != 8)
				break;
			uint64_t phys = (e & ((UINT64_C(1) << 55) - 1)) * 4096 + at % 4096;
			moved += phys != segs[i].phys + (at - segs[i].addr);
			(*checked)++;
		}
	}
	if (fd >= 0)
		close(fd);
	return moved;
}

/* What the kernel keeps for a fixed buffer: one entry per folio where this
 * kernel coalesces it, one per 4 KiB page where it does not. */
static uint64_t kernel_entries(const struct ring_buf *b)
{
	uint64_t unit = b->flags & RING_BUF_COALESCED ? UINT64_C(1) << b->page_shift : 4096;
	uint64_t end = b->addr + b->len;
	return (((end + unit - 1) & ~(unit - 1)) - (b->addr & ~(unit - 1))) / unit;
}

static uint64_t word(uint64_t off) { return off * 0x9e3779b97f4a7c15ULL ^ 0x5eed; }

int main(int argc, char **argv)
{
	uint64_t size = 1024 * MiB;
	unsigned pause_s = 0;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--pause") == 0 && i + 1 < argc)
			pause_s = (unsigned)strtoul(argv[++i], NULL, 0);
		else
			size = strtoull(argv[i], NULL, 0) * MiB;
	}
	if (size < 64 * MiB || size > 4096 * MiB) {
		fprintf(stderr, "demo: size must be 64..4096 MiB\n");
		return 2;
	}
	char a[32], b[32], c[32];

	/* ---- a realistic buffer */
	char *raw = mmap(NULL, size + 2 * MiB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (raw == MAP_FAILED)
		die("mmap", errno);
	char *buf = (char *)(((uintptr_t)raw + 2 * MiB - 1) & ~(uintptr_t)(2 * MiB - 1));
	madvise(buf, size, MADV_HUGEPAGE);
	memset(buf, 0, size);
	uint64_t stray[3] = { size / 10 * 1 / (2 * MiB) * (2 * MiB) + 4096 * 7, size / 10 * 4 / (2 * MiB) * (2 * MiB),
			      size / 10 * 7 / (2 * MiB) * (2 * MiB) + 4096 * 300 };
	for (int i = 0; i < 3; i++) {
		/* Split the huge page, fault the 4 KiB back alone, and keep khugepaged
		 * from collapsing the block again while the demo runs. */
		char *block = (char *)(((uintptr_t)buf + stray[i]) & ~(uintptr_t)(2 * MiB - 1));
		madvise(block, 2 * MiB, MADV_NOHUGEPAGE);
		madvise(buf + stray[i], 4096, MADV_DONTNEED);
		buf[stray[i]] = 1;
	}
	printf("libphyr %s demo: a %s THP buffer with 3 stray 4 KiB pages, at +%s, +%s, +%s\n\n", phyr_version(),
	       size_text(size, a, sizeof a), size_text(stray[0], b, sizeof b), size_text(stray[1], c, sizeof c),
	       size_text(stray[2], (char[32]){ 0 }, 32));

	/* ---- pin it and show the backing */
	unsigned flags = PHYR_PIN_WRITE | PHYR_PIN_PHYS;
	phyr_t *r;
	double t = now_ms();
	int rc = phyr_pin(buf, size, flags, &r);
	if (rc == -EPERM) {
		flags = PHYR_PIN_WRITE; /* physical addresses need CAP_SYS_ADMIN */
		t = now_ms();
		rc = phyr_pin(buf, size, flags, &r);
	}
	double pin_ms = now_ms() - t;
	if (rc)
		die("phyr_pin", rc);
	int n = phyr_segs(r, NULL, 0);
	struct phyr_seg *segs = calloc((size_t)n, sizeof *segs);
	int *nodes = calloc((size_t)n, sizeof *nodes);
	phyr_segs(r, segs, (unsigned)n);
	phyr_seg_nodes(r, nodes, (unsigned)n);
	/* The NUMA node of each segment, where the machine has more than one. */
	int numa = 0;
	FILE *f = fopen("/sys/devices/system/node/has_memory", "r");
	if (f) {
		char list[64] = "";
		numa = fgets(list, sizeof list, f) && strpbrk(list, ",-") != NULL;
		fclose(f);
	}
	printf("phyr_pin: %.2f ms, %d segments%s\n\n", pin_ms, n,
	       flags & PHYR_PIN_PHYS ? " (physically contiguous runs)" : " (no CAP_SYS_ADMIN: no physical addresses)");
	printf("  %-14s %10s %8s %9s  %-16s %s%s\n", "offset", "length", "page", "segments", "first physical",
	       numa ? "node  " : "", "backing");
	for (int i = 0; i < n;) {
		int j = i;
		uint64_t len = 0;
		while (j < n && segs[j].page_shift == segs[i].page_shift && segs[j].flags == segs[i].flags &&
		       nodes[j] == nodes[i])
			len += segs[j++].len;
		char phys[24] = "-", node[16] = "";
		if (segs[i].phys != PHYR_PHYS_UNKNOWN)
			snprintf(phys, sizeof phys, "%#llx", (unsigned long long)segs[i].phys);
		if (numa)
			snprintf(node, sizeof node, "%-4d  ", nodes[i]);
		printf("  +%-13s %10s %8s %9d  %-16s %s%s\n", size_text(segs[i].addr - (uintptr_t)buf, a, sizeof a),
		       size_text(len, b, sizeof b), size_text(UINT64_C(1) << segs[i].page_shift, c, sizeof c), j - i, phys,
		       node, segs[i].flags & PHYR_SEG_HUGE ? "transparent huge pages" : "4 KiB pages");
		i = j;
	}
	free(nodes);
	free(segs);

	/* ---- register it the libphyr way */
	struct io_uring ring;
	if ((rc = io_uring_queue_init(64, &ring, 0)))
		die("io_uring_queue_init", rc);
	ring_reg_t *reg;
	t = now_ms();
	if ((rc = ring_register_ranges(&ring, &r, 1, 0, &reg)))
		die("ring_register_ranges", rc);
	double ours_ms = now_ms() - t;
	phyr_unpin(r); /* the registration holds its own reference */

	int nb = ring_reg_bufs(reg, NULL, 0);
	struct ring_buf *bufs = calloc((size_t)nb, sizeof *bufs);
	ring_reg_bufs(reg, bufs, (unsigned)nb);
	printf("\nregistration plan: %d fixed buffers\n\n", nb);
	printf("  %5s  %-14s %10s %8s  %-10s %14s %12s\n", "index", "offset", "length", "page", "coalesces",
	       "kernel entries", "lock charge");
	uint64_t entries = 0, charge = 0;
	for (int i = 0; i < nb; i++) {
		/* One entry per folio where this kernel coalesces the buffer, per
		 * 4 KiB page where it does not; huge pages are charged whole either
		 * way. */
		uint64_t folio = UINT64_C(1) << bufs[i].page_shift;
		uint64_t end = bufs[i].addr + bufs[i].len;
		uint64_t e = kernel_entries(&bufs[i]);
		uint64_t lo = bufs[i].addr & ~(folio - 1), hi = (end + folio - 1) & ~(folio - 1);
		entries += e;
		charge += hi - lo;
		printf("  %5u  +%-13s %10s %8s  %-10s %14llu %12s\n", bufs[i].index,
		       size_text(bufs[i].addr - (uintptr_t)buf, a, sizeof a), size_text(bufs[i].len, b, sizeof b),
		       size_text(UINT64_C(1) << bufs[i].page_shift, c, sizeof c),
		       bufs[i].flags & RING_BUF_COALESCED ? "yes" : "no", (unsigned long long)e,
		       size_text(hi - lo, (char[32]){ 0 }, 32));
	}
	printf("  %5s  %-14s %10s %8s  %-10s %14llu %12s\n", "", "total", "", "", "", (unsigned long long)entries,
	       size_text(charge, a, sizeof a));

	/* ---- read a generated file through the fixed buffers, data checked */
	char path[] = "/var/tmp/phyr-demo-XXXXXX";
	int fd = mkstemp(path);
	if (fd < 0)
		die("mkstemp", errno);
	unlink(path);
	uint64_t *w = malloc(CHUNK);
	for (uint64_t off = 0; off < size; off += CHUNK) {
		for (uint64_t i = 0; i < CHUNK / 8; i++)
			w[i] = word(off + i * 8);
		if (pwrite(fd, w, CHUNK, (off_t)off) != (ssize_t)CHUNK)
			die("pwrite", errno);
	}
	free(w);
	t = now_ms();
	uint64_t done = 0, requests = 0, split = 0;
	unsigned inflight = 0;
	while (done < size || inflight) {
		while (done < size && inflight < 32) {
			unsigned idx;
			size_t avail;
			if ((rc = ring_reg_lookup(reg, buf + done, CHUNK, &idx, &avail)))
				die("ring_reg_lookup", rc);
			split += avail < CHUNK && done + avail < size;
			struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
			io_uring_prep_read_fixed(sqe, fd, buf + done, (unsigned)avail, done, (int)idx);
			sqe->user_data = avail;
			done += avail;
			inflight++;
			requests++;
		}
		io_uring_submit_and_wait(&ring, 1);
		struct io_uring_cqe *cqe;
		while (io_uring_peek_cqe(&ring, &cqe) == 0) {
			if (cqe->res != (int)cqe->user_data)
				die("READ_FIXED", cqe->res < 0 ? cqe->res : EIO);
			io_uring_cqe_seen(&ring, cqe);
			inflight--;
		}
	}
	double read_ms = now_ms() - t;
	uint64_t bad = UINT64_MAX;
	for (uint64_t off = 0; off < size && bad == UINT64_MAX; off += 8)
		if (((uint64_t *)(void *)buf)[off / 8] != word(off))
			bad = off;
	printf("\nREAD_FIXED of a %s file into it: %llu requests (%llu split at a buffer edge by ring_reg_lookup), "
	       "%.2f GB/s, data %s\n",
	       size_text(size, a, sizeof a), (unsigned long long)requests, (unsigned long long)split,
	       (double)size / read_ms / 1e6, bad == UINT64_MAX ? "checked: all correct" : "WRONG");
	if (bad != UINT64_MAX) {
		fprintf(stderr, "demo: data differs at +%#llx\n", (unsigned long long)bad);
		return 1;
	}
	if (pause_s) {
		/* For phyr-inspect(1): libphyr's registration in one ring, the plain
		 * one of the same memory in another, both live for a while. */
		struct io_uring plain_ring;
		struct iovec whole = { buf, size > (1024 * MiB) ? 1024 * MiB : size };
		if ((rc = io_uring_queue_init(8, &plain_ring, 0)) || (rc = io_uring_register_buffers(&plain_ring, &whole, 1)))
			die("io_uring_register_buffers", rc);
		printf("\npausing %u s: ring fd %d holds libphyr's registration, ring fd %d the plain one; try\n"
		       "  phyr-inspect --io-uring %d\n", pause_s, ring.ring_fd, plain_ring.ring_fd, (int)getpid());
		fflush(stdout);
		sleep(pause_s);
		io_uring_queue_exit(&plain_ring);
	}
	ring_unregister_ranges(reg);

	/* ---- the same memory, registered the plain way */
	struct iovec iov = { buf, size > (1024 * MiB) ? 1024 * MiB : size };
	t = now_ms();
	if ((rc = io_uring_register_buffers(&ring, &iov, 1)))
		die("io_uring_register_buffers", rc);
	double plain_ms = now_ms() - t;
	io_uring_unregister_buffers(&ring);
	/* Where the kernel coalesces nothing (before 6.11 for buffers of several
	 * huge pages) there is nothing to win, and the ratio says so. */
	char ratio[32];
	if (plain_ms >= ours_ms * 1.05)
		snprintf(ratio, sizeof ratio, plain_ms >= 10 * ours_ms ? "%.0fx faster" : "%.1fx faster", plain_ms / ours_ms);
	else if (ours_ms >= plain_ms * 1.05)
		snprintf(ratio, sizeof ratio, "%.2fx slower", ours_ms / plain_ms);
	else
		snprintf(ratio, sizeof ratio, "the same");
	printf("\nregistering %s: ring_register_ranges %.2f ms (%llu kernel entries) vs "
	       "io_uring_register_buffers %.2f ms (%llu entries, one per 4 KiB page): %s\n",
	       size_text(iov.iov_len, a, sizeof a), ours_ms, (unsigned long long)entries, plain_ms,
	       (unsigned long long)(iov.iov_len / 4096), ratio);
	if (size > 1024 * MiB)
		printf("(plain registration timed on the first GiB: the kernel takes at most 1 GiB per buffer)\n");

	/* ---- repair the backing: PHYR_PIN_HUGE collapses the stray extents */
	for (int i = 0; i < 3; i++) /* eligible again: the demo had kept khugepaged off them */
		madvise((char *)(((uintptr_t)buf + stray[i]) & ~(uintptr_t)(2 * MiB - 1)), 2 * MiB, MADV_HUGEPAGE);
	t = now_ms();
	if ((rc = phyr_pin(buf, size, PHYR_PIN_WRITE | PHYR_PIN_HUGE, &r)))
		die("phyr_pin(PHYR_PIN_HUGE)", rc);
	double huge_ms = now_ms() - t;
	int huge_segs = phyr_segs(r, NULL, 0);
	t = now_ms();
	if ((rc = ring_register_ranges(&ring, &r, 1, 0, &reg)))
		die("ring_register_ranges", rc);
	double huge_reg_ms = now_ms() - t;
	int hb = ring_reg_bufs(reg, bufs, (unsigned)nb);
	uint64_t huge_entries = 0;
	for (int i = 0; i < hb && i < nb; i++)
		huge_entries += kernel_entries(&bufs[i]);
	printf("\nPHYR_PIN_HUGE (MADV_COLLAPSE of the 3 stray extents): %.2f ms, %d segment%s; registered as %d "
	       "buffer%s, %llu kernel entries (%llu before), %.2f ms\n", huge_ms, huge_segs, huge_segs == 1 ? "" : "s", hb,
	       hb == 1 ? "" : "s", (unsigned long long)huge_entries, (unsigned long long)entries, huge_reg_ms);
	ring_unregister_ranges(reg);
	phyr_unpin(r);
	free(bufs);

	/* ---- the kernel's own pin: PHYR_PIN_LONGTERM, shared by 4 rings */
	int phys = geteuid() == 0;
	uint64_t pin0 = vmpin();
	t = now_ms();
	if ((rc = phyr_pin(buf, size, PHYR_PIN_LONGTERM | PHYR_PIN_DONTFORK | (phys ? PHYR_PIN_PHYS : 0), &r)))
		die("phyr_pin(PHYR_PIN_LONGTERM)", rc);
	double lt_ms = now_ms() - t;
	uint64_t held = vmpin() - pin0;
	printf("\nPHYR_PIN_LONGTERM | PHYR_PIN_DONTFORK: %.2f ms; the kernel holds %s pinned (VmPin), nothing mlocked\n",
	       lt_ms, size_text(held, a, sizeof a));
	struct io_uring rings[4];
	ring_reg_t *regs[4];
	double per_ring[4];
	for (int i = 0; i < 4; i++) {
		if ((rc = io_uring_queue_init(8, &rings[i], 0)))
			die("io_uring_queue_init", rc);
		t = now_ms();
		if ((rc = ring_register_ranges(&rings[i], &r, 1, 0, &regs[i])))
			die("ring_register_ranges", rc);
		per_ring[i] = now_ms() - t;
	}
	printf("registered into 4 rings: %.3f, %.3f, %.3f, %.3f ms (io_uring_register_buffers: %.2f ms per ring); "
	       "VmPin %s %s\n", per_ring[0], per_ring[1], per_ring[2], per_ring[3], plain_ms,
	       vmpin() - pin0 <= held + 64 * 1024 ? "unchanged:" : "grew (this kernel re-pins):",
	       size_text(vmpin() - pin0, a, sizeof a));
	double dontfork_ms = fork_ms();
	if (phys) {
		uint64_t checked, before = moved_pages(r, &checked);
		int cfd = open("/proc/sys/vm/compact_memory", O_WRONLY);
		if (cfd >= 0 && write(cfd, "1\n", 2) == 2) {
			uint64_t moved = moved_pages(r, &checked);
			printf("echo 1 > /proc/sys/vm/compact_memory: %llu of %llu pinned pages moved (%llu before)\n",
			       (unsigned long long)moved, (unsigned long long)checked, (unsigned long long)before);
		}
		if (cfd >= 0)
			close(cfd);
	}
	for (int i = 0; i < 4; i++) {
		ring_unregister_ranges(regs[i]);
		io_uring_queue_exit(&rings[i]);
	}
	phyr_unpin(r);
	if ((rc = phyr_pin(buf, size, PHYR_PIN_LONGTERM, &r)))
		die("phyr_pin(PHYR_PIN_LONGTERM)", rc);
	double copy_ms = fork_ms();
	phyr_unpin(r);
	printf("fork() while it is pinned: %.2f ms with PHYR_PIN_DONTFORK, %.1f ms without (the kernel copies "
	       "pinned pages for the child)\n", dontfork_ms, copy_ms);

	io_uring_queue_exit(&ring);
	close(fd);
	munmap(raw, size + 2 * MiB);
	return 0;
}
