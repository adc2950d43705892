/* SPDX-License-Identifier: MIT */
/*
 * Memory that cannot be faulted in is an error, never a signal: a file
 * mapping past the end of its file (SIGBUS on a touch), a hugetlb mapping
 * whose pool has no page left.  tests/run.sh runs this again with
 * PHYR_FORCE_FALLBACK=populate, the path of kernels before 5.14, where
 * libphyr faults pages in itself.
 */
#include "harness.h"

#include <linux/futex.h>
#include <pthread.h>
#include <time.h>

#ifndef MFD_HUGETLB
#define MFD_HUGETLB 0x0004U
#endif
#ifndef MAP_HUGE_SHIFT
#define MAP_HUGE_SHIFT 26
#endif

static void check_message(const char *needle)
{
	CHECK(strstr(phyr_last_error(), needle) != NULL, "message lacks \"%s\": %s", needle, phyr_last_error());
}

/* A file of 8 KiB mapped as 16 KiB: the second half is past its end. */
static void file_past_its_end(int shared, unsigned flags)
{
	char path[] = "/var/tmp/phyr-populate-XXXXXX";
	int fd = mkstemp(path);
	CHECK(fd >= 0 && ftruncate(fd, 8 * KiB) == 0, "file: %s", strerror(errno));
	unlink(path);
	char *p = mmap(NULL, 16 * KiB, PROT_READ | PROT_WRITE, shared ? MAP_SHARED : MAP_PRIVATE, fd, 0);
	CHECK(p != MAP_FAILED, "mmap: %s", strerror(errno));
	phyr_t *r;
	/* Within the file: pins. */
	CHECK_RC(phyr_pin(p + 10, 8 * KiB - 20, flags, &r), 0);
	CHECK_LOCKED_EXACTLY(p, 16 * KiB, p, p + 8 * KiB);
	CHECK_RC(phyr_unpin(r), 0);
	/* Past it: refused, nothing locked, no SIGBUS. */
	CHECK_RC(phyr_pin(p, 16 * KiB, flags, &r), -EFAULT);
	check_message("past the end of its file");
	CHECK_NOTHING_LOCKED(p, 16 * KiB);
	munmap(p, 16 * KiB);
	close(fd);
}

static void files_past_their_end(void)
{
	file_past_its_end(1, 0);
	file_past_its_end(1, PHYR_PIN_WRITE);
	file_past_its_end(0, 0);
	file_past_its_end(0, PHYR_PIN_WRITE);
}

static long read_long(const char *path)
{
	FILE *f = fopen(path, "r");
	long v = -1;
	if (f && fscanf(f, "%ld", &v) != 1)
		v = -1;
	if (f)
		fclose(f);
	return v;
}

/* MAP_NORESERVE hugetlb memory one page larger than what the pool has free:
 * the pin runs the pool dry and says so with -ENOMEM. */
static void hugetlb_pool_runs_dry(void)
{
	const char *dir = "/sys/kernel/mm/hugepages/hugepages-2048kB";
	char path[128];
	snprintf(path, sizeof path, "%s/free_hugepages", dir);
	long free_pages = read_long(path);
	snprintf(path, sizeof path, "%s/nr_overcommit_hugepages", dir);
	long overcommit = read_long(path);
	if (free_pages < 0) {
		skip("no 2 MiB hugetlb pool in this kernel");
	}
	if (overcommit != 0) {
		skip("nr_overcommit_hugepages is %ld: the pool cannot run dry", overcommit);
	}
	size_t len = (size_t)(free_pages + 1) * HUGE2M;
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_NORESERVE | (21 << MAP_HUGE_SHIFT), -1, 0);
	CHECK(p != MAP_FAILED, "mmap of %ld hugetlb pages, MAP_NORESERVE: %s", free_pages + 1, strerror(errno));
	phyr_t *r;
	CHECK_RC(phyr_pin(p, len, PHYR_PIN_WRITE, &r), -ENOMEM);
	check_message("hugetlb");
	check_message("free");
	CHECK_RC(phyr_pin(p, len, 0, &r), -ENOMEM);
	munmap(p, len);
	CHECK(read_long(path) >= 0, "pool state");
}

/* A hugetlbfs file mapped past its end, while the pool has pages: that is
 * -EFAULT (past the end of its file), not an empty pool. */
static void hugetlb_file_past_its_end(void)
{
	int fd = (int)syscall(SYS_memfd_create, "phyr-hugetlb", MFD_HUGETLB);
	if (fd < 0) {
		skip("no hugetlb memfd (%s)", strerror(errno));
	}
	CHECK(ftruncate(fd, (off_t)HUGE2M) == 0, "ftruncate: %s", strerror(errno));
	/* Read-only: a shared writable hugetlb mapping past its end is faulted
	 * in by the kernel (6.18) rather than refused. */
	char *p = mmap(NULL, 2 * HUGE2M, PROT_READ, MAP_SHARED, fd, 0);
	CHECK(p != MAP_FAILED, "mmap: %s", strerror(errno));
	phyr_t *r;
	int rc = phyr_pin(p, HUGE2M, 0, &r);
	if (rc == -ENOMEM) {
		skip_part("the 2 MiB hugetlb pool is empty (%s): only past-the-end is checked", phyr_last_error());
	} else {
		CHECK_RC(rc, 0);
		CHECK_RC(phyr_unpin(r), 0);
		CHECK_RC(phyr_pin(p, 2 * HUGE2M, 0, &r), -EFAULT);
		check_message("past the end of its file");
	}
	munmap(p, 2 * HUGE2M);
	close(fd);
}

/* Faulting pages in by hand writes nothing and wakes no futex waiter: a
 * thread waits on the first word of a page while a pin write-faults it. */
static uint32_t *futex_word;
static volatile int waiter_result = 1;

static void *waiter(void *arg)
{
	(void)arg;
	struct timespec ts = { 1, 0 };
	long rc = syscall(SYS_futex, futex_word, FUTEX_WAIT_PRIVATE, 0, &ts, NULL, 0);
	waiter_result = rc == 0 ? 0 : -errno;
	return NULL;
}

static void pins_wake_no_waiter(void)
{
	char *p = map_aligned(4 * HUGE2M, HUGE2M, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	futex_word = (uint32_t *)p;
	(void)*(volatile uint32_t *)futex_word; /* present, as a waiter's word is */
	pthread_t t;
	CHECK(pthread_create(&t, NULL, waiter, NULL) == 0, "pthread_create");
	usleep(100000);
	phyr_t *r;
	CHECK_RC(phyr_pin(p, 4 * HUGE2M, PHYR_PIN_WRITE, &r), 0);
	pthread_join(t, NULL);
	CHECK(waiter_result == -ETIMEDOUT, "the waiter was woken (%d) by the pin", waiter_result);
	CHECK(*futex_word == 0, "the word changed to %u", *futex_word);
	CHECK_RC(phyr_unpin(r), 0);
	munmap(p, 4 * HUGE2M);
}

int main(int argc, char **argv)
{
	TEST_MAIN(argc, argv);
	RUN(files_past_their_end);
	RUN(hugetlb_pool_runs_dry);
	RUN(hugetlb_file_past_its_end);
	RUN(pins_wake_no_waiter);
	CHECK(vmlck_bytes() == 0, "VmLck %" PRIu64 " at the end", vmlck_bytes());
	return t_done();
}
