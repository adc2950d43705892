/* SPDX-License-Identifier: MIT */
/* Every error of the contract: the code, a sentence, and nothing changed. */
#include "ring_io.h"

#include <pthread.h>
#include <sys/stat.h>

static void check_message(const char *needle)
{
	CHECK(strstr(phyr_last_error(), needle) != NULL, "message lacks \"%s\": %s", needle, phyr_last_error());
}

static void bad_arguments(void)
{
	char *p = base_alloc(64 * KiB);
	phyr_t *r = (phyr_t *)0x1;
	CHECK_RC(phyr_pin(p, 4096, 0, NULL), -EINVAL);
	check_message("out is NULL");
	CHECK_RC(phyr_pin(p, 0, 0, &r), -EINVAL);
	check_message("len is 0");
	CHECK_RC(phyr_pin(p, 4096, 0x100, &r), -EINVAL);
	check_message("unknown flag");
	CHECK_RC(phyr_pin((void *)(UINTPTR_MAX - 100), 4096, 0, &r), -EINVAL);
	check_message("wraps");
	CHECK_RC(phyr_pin(p, SIZE_MAX, 0, &r), -EINVAL);
	CHECK_RC(phyr_pin((void *)(uintptr_t)(UINT64_C(1) << 62), 4096, 0, &r), -EFAULT);
	CHECK(r == (phyr_t *)0x1, "a failed pin wrote *out");
	munmap(p, 64 * KiB);
}

static void unmapped_memory(void)
{
	char *p = base_alloc(4 * PAGE);
	char hole[32];
	snprintf(hole, sizeof hole, "%#" PRIx64, U(p + PAGE));
	CHECK(munmap(p + PAGE, PAGE) == 0, "munmap");
	phyr_t *r;
	CHECK_RC(phyr_pin(p + 10, 3 * PAGE, 0, &r), -EFAULT);
	check_message(hole);
	check_message("not mapped");
	/* Partly unmapped: runs past the end of the mapping. */
	CHECK_RC(phyr_pin(p + 2 * PAGE, 4 * PAGE, 0, &r), -EFAULT);
	CHECK(vmlck_bytes() == 0, "a failed pin left %" PRIu64 " bytes locked", vmlck_bytes());
	CHECK_NOTHING_LOCKED(p, 4 * PAGE);
	munmap(p, 4 * PAGE);
}

static void prot_none(void)
{
	char *p = base_alloc(4 * PAGE);
	CHECK(mprotect(p + 2 * PAGE, PAGE, PROT_NONE) == 0, "mprotect");
	phyr_t *r;
	CHECK_RC(phyr_pin(p, 4 * PAGE, 0, &r), -EFAULT);
	check_message("PROT_NONE");
	char where[32];
	snprintf(where, sizeof where, "%#" PRIx64, U(p + 2 * PAGE));
	check_message(where);
	CHECK_NOTHING_LOCKED(p, 4 * PAGE);
	CHECK_RC(phyr_pin(p, 2 * PAGE, 0, &r), 0);
	CHECK_RC(phyr_unpin(r), 0);
	munmap(p, 4 * PAGE);
}

static void read_only_for_write(void)
{
	char *p = base_alloc(4 * PAGE);
	CHECK(mprotect(p + PAGE, 2 * PAGE, PROT_READ) == 0, "mprotect");
	phyr_t *r;
	CHECK_RC(phyr_pin(p, 4 * PAGE, PHYR_PIN_WRITE, &r), -EACCES);
	check_message("read-only");
	CHECK_NOTHING_LOCKED(p, 4 * PAGE);
	CHECK_RC(phyr_pin(p, 4 * PAGE, 0, &r), 0);
	CHECK_RC(phyr_unpin(r), 0);
	munmap(p, 4 * PAGE);
}

/* Handles are checked against the registry before anything is read. */
static void bad_handles(void)
{
	char *p = base_alloc(64 * KiB);
	phyr_t *r;
	int local = 0;
	void *a;
	size_t len;
	struct phyr_seg s;
	CHECK_RC(phyr_pin(p, 64 * KiB, 0, &r), 0);
	CHECK_RC(phyr_unpin(NULL), -EINVAL);
	CHECK_RC(phyr_unpin((phyr_t *)&local), -EINVAL);
	check_message("not a live range");
	CHECK_RC(phyr_unpin((phyr_t *)p), -EINVAL);
	CHECK_RC(phyr_unpin((phyr_t *)(uintptr_t)0x8000000000fffff0ULL), -EINVAL);
	CHECK_RC(phyr_range((phyr_t *)&local, &a, &len), -EINVAL);
	CHECK_RC(phyr_segs((phyr_t *)&local, &s, 1), -EINVAL);
	CHECK_LOCKED_EXACTLY(p, 64 * KiB, p, p + 64 * KiB);  /* still ours */
	CHECK_RC(phyr_unpin(r), 0);
	CHECK_RC(phyr_unpin(r), -EINVAL);
	CHECK_RC(phyr_range(r, &a, &len), -EINVAL);
	CHECK_RC(phyr_segs(r, &s, 1), -EINVAL);
	CHECK_NOTHING_LOCKED(p, 64 * KiB);

	/* A released handle never aliases a later pin. */
	phyr_t *r2;
	CHECK_RC(phyr_pin(p, 64 * KiB, 0, &r2), 0);
	CHECK(r2 != r, "handle reused");
	CHECK_RC(phyr_unpin(r), -EINVAL);
	CHECK_LOCKED_EXACTLY(p, 64 * KiB, p, p + 64 * KiB);
	CHECK_RC(phyr_unpin(r2), 0);
	munmap(p, 64 * KiB);
}

/* A file mapping whose path is longer than any fixed name buffer: pins work,
 * and the refusal names the file. */
static void long_file_name(void)
{
	char dir[400], path[600];
	int n = snprintf(dir, sizeof dir, "/var/tmp/phyr-%d-", (int)getpid());
	memset(dir + n, 'd', 220);
	dir[n + 220] = 0;
	CHECK(mkdir(dir, 0700) == 0, "mkdir: %s", strerror(errno));
	char base[120];
	memset(base, 'f', 100);
	strcpy(base + 100, ".dat");
	snprintf(path, sizeof path, "%s/%s", dir, base);
	int fd = open(path, O_CREAT | O_RDWR, 0600);
	CHECK(fd >= 0 && ftruncate(fd, 8192) == 0, "file: %s", strerror(errno));
	char *p = mmap(NULL, 8192, PROT_READ, MAP_SHARED, fd, 0);
	CHECK(p != MAP_FAILED, "mmap: %s", strerror(errno));
	phyr_t *r;
	CHECK_RC(phyr_pin(p, 8192, 0, &r), 0);
	struct phyr_seg s[2];
	CHECK(segs_of(r, s, 2) == 1 && (s[0].flags & PHYR_SEG_SHARED), "file pages: flags %#x", s[0].flags);
	CHECK_RC(phyr_unpin(r), 0);
	CHECK_RC(phyr_pin(p, 8192, PHYR_PIN_WRITE, &r), -EACCES);
	check_message(base);
	munmap(p, 8192);
	close(fd);
	unlink(path);
	rmdir(dir);
}

static void *fail_in_thread(void *arg)
{
	(void)arg;
	phyr_t *r;
	CHECK_RC(phyr_pin(NULL, 0, 0, &r), -EINVAL);
	check_message("len is 0");
	return NULL;
}

/* The last error is per thread. */
static void thread_local_error(void)
{
	phyr_t *r;
	CHECK_RC(phyr_pin(NULL, 4096, 0x80, &r), -EINVAL);
	pthread_t t;
	CHECK(pthread_create(&t, NULL, fail_in_thread, NULL) == 0, "pthread_create");
	pthread_join(t, NULL);
	check_message("unknown flag");
}

/* Out of descriptors: the errno says so, not "not mapped" or "not open". */
static void no_descriptor_left(void *arg)
{
	(void)arg;
	char *shared = mmap(NULL, 64 * KiB, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	char *p = base_alloc(64 * KiB);
	phyr_t *r;
	struct io_uring ring;
	int have_ring = io_uring_queue_init(4, &ring, 0) == 0;
	CHECK_RC(phyr_pin(p, 64 * KiB, PHYR_PIN_WRITE, &r), 0); /* libphyr's own files are open */
	for (int fd = 0; fd < 1024; fd++) {
		int flags = fcntl(fd, F_GETFD);
		if (fd > 2 && (have_ring ? fd != ring.ring_fd : 1) && flags >= 0 && !(flags & FD_CLOEXEC))
			close(fd); /* only libphyr's close-on-exec files and the ring stay */
	}
	while (open("/dev/null", O_RDONLY) >= 0)
		;
	CHECK(errno == EMFILE, "ran out of descriptors with %s", strerror(errno));
	if (have_ring) {
		ring_reg_t *reg;
		int rc = ring_register_ranges(&ring, &r, 1, 0, &reg);
		CHECK(rc == -EMFILE || rc == -ENFILE, "ring_register_ranges with no descriptor left: %d (%s)", rc,
		      phyr_last_error());
	} else {
		skip_part("no io_uring here: a registration with no descriptor left is unchecked");
	}
	phyr_t *s;
	int rc = phyr_pin(shared, 64 * KiB, 0, &s);
	CHECK(rc == 0 || rc == -EMFILE || rc == -ENFILE, "a pin with no descriptor left: %d (%s)", rc, phyr_last_error());
	if (rc == 0)
		CHECK_RC(phyr_unpin(s), 0);
	CHECK_RC(phyr_unpin(r), 0);
}

int main(int argc, char **argv)
{
	TEST_MAIN(argc, argv);
	CHECK(strcmp(phyr_last_error(), "") == 0, "fresh thread has an error: %s", phyr_last_error());
	RUN(bad_arguments);
	RUN(unmapped_memory);
	RUN(prot_none);
	RUN(read_only_for_write);
	RUN(bad_handles);
	RUN(long_file_name);
	RUN(thread_local_error);
	RUN_CHILD(no_descriptor_left, NULL);
	CHECK(vmlck_bytes() == 0, "VmLck %" PRIu64 " at the end", vmlck_bytes());
	return t_done();
}
