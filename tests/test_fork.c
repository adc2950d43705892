/* SPDX-License-Identifier: MIT */
/*
 * fork(): the child starts with no ranges and no registrations of its own,
 * the parent's handles are refused there with a sentence saying whose they
 * are, nothing the child calls changes the parent's locks or buffer tables,
 * and a child forked while other threads are inside libphyr can call it.
 */
#include "ring_io.h"

#include <pthread.h>

static void check_message(const char *needle)
{
	CHECK(strstr(phyr_last_error(), needle) != NULL, "message lacks \"%s\": %s", needle, phyr_last_error());
}

static char *region;
static phyr_t *parents;

static void grandchild_sees_no_ranges(void *arg)
{
	(void)arg;
	CHECK_RC(phyr_unpin(parents), -EINVAL);
	check_message("parent");
}

static void child_without_ranges(void *arg)
{
	(void)arg;
	/* mlock is not inherited, and neither are libphyr's ranges. */
	CHECK_NOTHING_LOCKED(region, 8 * MiB);
	struct phyr_seg s[4];
	void *a;
	size_t len;
	phyr_t *tail;
	CHECK_RC(phyr_segs(parents, s, 4), -EINVAL);
	check_message("parent");
	CHECK_RC(phyr_range(parents, &a, &len), -EINVAL);
	CHECK_RC(phyr_split(parents, 4096, &tail), -EINVAL);
	CHECK_RC(phyr_unpin(parents), -EINVAL);
	check_message("belongs to the parent process");

	/* The child pins the same memory for itself, and memory the parent never
	 * had (libphyr reads the child's own maps and pagemap, not the parent's). */
	phyr_t *own, *fresh;
	CHECK_RC(phyr_pin(region + 100, 4 * MiB, PHYR_PIN_WRITE, &own), 0);
	CHECK_LOCKED_EXACTLY(region, 8 * MiB, region, region + 6 * MiB);
	CHECK(own != parents, "the child got the parent's handle back");
	char *mine = thp_alloc(4 * MiB);
	CHECK_RC(phyr_pin(mine, 4 * MiB, has_cap(T_CAP_SYS_ADMIN) ? PHYR_PIN_PHYS : 0, &fresh), 0);
	int n = segs_of(fresh, s, 4);
	for (int i = 0; i < n; i++)
		CHECK(s[i].flags == PHYR_SEG_HUGE && s[i].page_shift == 21, "child's own THP: segment %d flags %#x", i,
		      s[i].flags);
	if (has_cap(T_CAP_SYS_ADMIN))
		CHECK(s[0].phys == phys_of(mine), "child's phys %#" PRIx64 ", its pagemap says %#" PRIx64, s[0].phys,
		      phys_of(mine));
	CHECK_CHILD(grandchild_sees_no_ranges, NULL);
	CHECK_RC(phyr_unpin(fresh), 0);
	CHECK_RC(phyr_unpin(own), 0);
	CHECK_NOTHING_LOCKED(region, 8 * MiB);
}

static void child_starts_with_no_ranges(void)
{
	region = thp_alloc(8 * MiB);
	CHECK_RC(phyr_pin(region, 8 * MiB, 0, &parents), 0);
	CHECK_CHILD(child_without_ranges, NULL);
	/* Nothing the child did touched the parent's locks. */
	CHECK_LOCKED_EXACTLY(region, 8 * MiB, region, region + 8 * MiB);
	struct phyr_seg s[4];
	CHECK(segs_of(parents, s, 4) == 1, "the parent's range changed");
	CHECK_RC(phyr_unpin(parents), 0);
	CHECK_NOTHING_LOCKED(region, 8 * MiB);
	munmap(region, 8 * MiB);
}

static struct io_uring ring;
static ring_reg_t *parents_reg;
static char *buf;

static void child_with_parents_ring(void *arg)
{
	(void)arg;
	unsigned idx;
	size_t avail;
	struct ring_buf b[4];
	CHECK_RC(ring_reg_lookup(parents_reg, buf, 4096, &idx, &avail), -EINVAL);
	check_message("parent");
	CHECK_RC(ring_reg_bufs(parents_reg, b, 4), -EINVAL);
	CHECK_RC(ring_unregister_ranges(parents_reg), -EINVAL);
	check_message("belongs to the parent process");

	/* The ring itself is shared with the parent, and so is its table: a
	 * registration of the child's there is refused, not merged into it. */
	phyr_t *r;
	ring_reg_t *reg;
	CHECK_RC(phyr_pin(buf, 1 * MiB, PHYR_PIN_WRITE, &r), 0);
	CHECK_RC(ring_register_ranges(&ring, &r, 1, 0, &reg), -EBUSY);
	CHECK(fdinfo_bufs(ring.ring_fd, NULL) == 1, "the child changed the parent's table: %d buffers",
	      fdinfo_bufs(ring.ring_fd, NULL));

	/* A ring of its own works as anywhere. */
	struct io_uring mine;
	CHECK_RC(io_uring_queue_init(8, &mine, 0), 0);
	CHECK_RC(ring_register_ranges(&mine, &r, 1, 0, &reg), 0);
	int in = pattern_file(1 * MiB, 31);
	fixed_io(&mine, reg, in, buf, 1 * MiB, 0, 0, 256 * KiB);
	CHECK(check_pattern(buf, 1 * MiB, 0, 31) < 0, "the child's fixed read");
	CHECK_RC(ring_unregister_ranges(reg), 0);
	int slots;
	CHECK(fdinfo_bufs(mine.ring_fd, &slots) == 0 && slots == 0, "the child's table outlived its registration");
	CHECK_RC(phyr_unpin(r), 0);
	io_uring_queue_exit(&mine);
	close(in);
}

static void child_leaves_parents_tables_alone(void)
{
	if (io_uring_queue_init(QD, &ring, 0) != 0) {
		skip("no io_uring here");
	}
	buf = base_alloc(4 * MiB);
	phyr_t *r;
	CHECK_RC(phyr_pin(buf, 4 * MiB, PHYR_PIN_WRITE, &r), 0);
	CHECK_RC(ring_register_ranges(&ring, &r, 1, 0, &parents_reg), 0);
	CHECK_RC(phyr_unpin(r), 0);
	CHECK(fdinfo_bufs(ring.ring_fd, NULL) == 1, "fdinfo lists %d buffers", fdinfo_bufs(ring.ring_fd, NULL));

	CHECK_CHILD(child_with_parents_ring, NULL);

	/* The parent's table is whole: its fixed I/O works and it unregisters. */
	CHECK(fdinfo_bufs(ring.ring_fd, NULL) == 1, "after the child, fdinfo lists %d buffers",
	      fdinfo_bufs(ring.ring_fd, NULL));
	int in = pattern_file(4 * MiB, 17);
	memset(buf, 0, 4 * MiB);
	fixed_io(&ring, parents_reg, in, buf, 4 * MiB, 0, 0, 1 * MiB);
	CHECK(check_pattern(buf, 4 * MiB, 0, 17) < 0, "the parent's fixed read after the child");
	CHECK_RC(ring_unregister_ranges(parents_reg), 0);
	CHECK(ring_has_no_table(&ring), "the parent's table outlived its registration");
	CHECK_NOTHING_LOCKED(buf, 4 * MiB);
	io_uring_queue_exit(&ring);
	close(in);
	munmap(buf, 4 * MiB);
}

/* Forks while three threads pin, split and unpin (and one registers): every
 * child can call libphyr at once, and none is killed or stuck. */
#define BUSY 3
static volatile int stop_busy;
static char *busy_region;

static void *busy(void *arg)
{
	uint64_t seed = 0x51ed270b27a1c3d5ULL + (uint64_t)(uintptr_t)arg;
	struct io_uring r;
	int have_ring = (uintptr_t)arg == 0 && io_uring_queue_init(8, &r, 0) == 0;
	while (!stop_busy) {
		uint64_t off = next_rand(&seed) % (30 * MiB);
		phyr_t *a, *b = NULL;
		CHECK_RC(phyr_pin(busy_region + off, 1 + next_rand(&seed) % (2 * MiB), PHYR_PIN_WRITE, &a), 0);
		size_t len;
		CHECK_RC(phyr_range(a, NULL, &len), 0);
		if (len > 1)
			CHECK_RC(phyr_split(a, len / 2, &b), 0);
		if (have_ring) {
			ring_reg_t *reg;
			CHECK_RC(ring_register_ranges(&r, &a, 1, 0, &reg), 0);
			CHECK_RC(ring_unregister_ranges(reg), 0);
		}
		CHECK_RC(phyr_unpin(a), 0);
		if (b)
			CHECK_RC(phyr_unpin(b), 0);
	}
	if (have_ring)
		io_uring_queue_exit(&r);
	return NULL;
}

static void child_calls_at_once(void *arg)
{
	(void)arg;
	alarm(20); /* a deadlocked child dies of SIGALRM and is counted */
	char *p = base_alloc(64 * KiB);
	phyr_t *r;
	CHECK_RC(phyr_pin(p + 1, 60 * KiB, PHYR_PIN_WRITE, &r), 0);
	struct phyr_seg s[2];
	CHECK(phyr_segs(r, s, 2) == 1, "segs");
	CHECK_LOCKED_EXACTLY(p, 64 * KiB, p, p + 64 * KiB);
	CHECK_RC(phyr_unpin(r), 0);
	CHECK_NOTHING_LOCKED(p, 64 * KiB);
}

static void fork_while_threads_are_inside(void)
{
	busy_region = thp_alloc(32 * MiB);
	pthread_t t[BUSY];
	for (uintptr_t i = 0; i < BUSY; i++)
		CHECK(pthread_create(&t[i], NULL, busy, (void *)i) == 0, "pthread_create");
	int bad = 0, first_status = 0;
	for (int i = 0; i < rounds(40); i++) {
		usleep(2000);
		int st = in_child(child_calls_at_once, NULL);
		if (st != 0) {
			if (!bad)
				first_status = st;
			bad++;
		}
	}
	stop_busy = 1;
	for (int i = 0; i < BUSY; i++)
		pthread_join(t[i], NULL);
	CHECK(bad == 0, "%d of %d children forked mid-call failed (first: %s %d)", bad, rounds(40),
	      first_status > 128 ? "signal" : "exit", first_status > 128 ? first_status - 128 : first_status);
	CHECK_NOTHING_LOCKED(busy_region, 32 * MiB);
	CHECK(vmlck_bytes() == 0, "VmLck %" PRIu64, vmlck_bytes());
	munmap(busy_region, 32 * MiB);
}

/* A ring the parent made but never registered buffers in through libphyr
 * (a master that makes one ring per worker before forking them) is the
 * child's to use: its registration there works, and leaves no table behind. */
static void child_into_inherited_ring(void *arg)
{
	(void)arg;
	char *p = base_alloc(64 * KiB);
	phyr_t *r;
	ring_reg_t *reg;
	CHECK_RC(phyr_pin(p, 64 * KiB, PHYR_PIN_WRITE, &r), 0);
	CHECK_RC(ring_register_ranges(&ring, &r, 1, 0, &reg), 0);
	CHECK(fdinfo_bufs(ring.ring_fd, NULL) == 1, "fdinfo lists %d buffers", fdinfo_bufs(ring.ring_fd, NULL));
	read_checked(&ring, reg, p, 64 * KiB, 23, "the child, through the inherited ring");
	CHECK_RC(ring_unregister_ranges(reg), 0);
	CHECK_RC(phyr_unpin(r), 0);
}

static void child_uses_parents_unregistered_ring(void)
{
	if (io_uring_queue_init(8, &ring, 0) != 0) {
		skip("no io_uring here");
	}
	CHECK_CHILD(child_into_inherited_ring, NULL);
	CHECK(ring_has_no_table(&ring), "the child left a table in the ring");
	io_uring_queue_exit(&ring);
}

/* The first call into libphyr makes its globals.  A fork while another thread
 * makes them must not leave the child waiting for them: a fresh process per
 * round (this program again, with an argument) whose first call races a fork. */
static void *first_call(void *arg)
{
	char *p = arg;
	phyr_t *r;
	CHECK_RC(phyr_pin(p, 4096, 0, &r), 0);
	CHECK_RC(phyr_unpin(r), 0);
	return NULL;
}

static int first_call_worker(void)
{
	char *p = base_alloc(64 * KiB);
	pthread_t t;
	CHECK(pthread_create(&t, NULL, first_call, p) == 0, "pthread_create");
	int st = in_child(child_calls_at_once, NULL);
	pthread_join(t, NULL);
	return st;
}

static void first_call_races_fork(void)
{
	int bad = 0, first = 0, n = rounds(100);
	for (int i = 0; i < n; i++) {
		fflush(NULL);
		pid_t pid = fork();
		CHECK(pid >= 0, "fork");
		if (pid == 0) {
			execl("/proc/self/exe", "test_fork", "--first-call-worker", (char *)NULL);
			_exit(99);
		}
		int st;
		CHECK(waitpid(pid, &st, 0) == pid, "waitpid");
		int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		if (code != 0 && !bad++)
			first = code;
	}
	CHECK(bad == 0, "%d of %d fresh processes whose first call raced a fork failed (first: %d)", bad, n, first);
}

/* A thread cancelled inside libphyr must not leave fork() waiting for good. */
static volatile int cancel_ready;
static void *pin_until_cancelled(void *arg)
{
	char *p = arg;
	for (;;) {
		phyr_t *r;
		/* A page unmapped under the range makes its release read smaps
		 * (open, read: cancellation points) inside a critical section. */
		if (phyr_pin(p, 16 * PAGE, 0, &r) == 0) {
			munmap(p + 3 * PAGE, PAGE);
			phyr_unpin(r);
			mmap(p + 3 * PAGE, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
		}
		cancel_ready = 1;
		pthread_testcancel(); /* libphyr defers cancellation to here */
	}
	return NULL;
}

static void noop(void *arg)
{
	(void)arg;
}

static void fork_after_cancel_inside(void)
{
	char *p = base_alloc(16 * PAGE);
	for (int i = 0; i < rounds(20); i++) {
		cancel_ready = 0;
		pthread_t t;
		CHECK(pthread_create(&t, NULL, pin_until_cancelled, p) == 0, "pthread_create");
		while (!cancel_ready)
			usleep(10);
		usleep((useconds_t)(i * 37 % 200));
		pthread_cancel(t);
		pthread_join(t, NULL);
		alarm(10); /* a fork stuck behind the guard dies of SIGALRM */
		CHECK_CHILD(noop, NULL);
		alarm(0);
	}
	CHECK_NOTHING_LOCKED(p, 16 * PAGE);
	munmap(p, 16 * PAGE);
}

/* _Fork() runs no atfork handlers: a single-threaded process's child made
 * that way is still a child, with none of its parent's ranges. */
static void child_of_underscore_fork(void)
{
	char *p = base_alloc(64 * KiB);
	phyr_t *r;
	CHECK_RC(phyr_pin(p, 64 * KiB, 0, &r), 0);
	fflush(NULL);
	pid_t pid = _Fork();
	CHECK(pid >= 0, "_Fork: %s", strerror(errno));
	if (pid == 0) {
		/* Memory only the child has: its first pin must read the child's
		 * own maps and pagemap, not the parent's files it inherited. */
		char *mine = mmap(NULL, 64 * KiB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		CHECK(mine != MAP_FAILED, "mmap");
		phyr_t *own;
		CHECK_RC(phyr_pin(mine, 64 * KiB, PHYR_PIN_WRITE, &own), 0);
		CHECK_LOCKED_EXACTLY(mine, 64 * KiB, mine, mine + 64 * KiB);
		CHECK_RC(phyr_unpin(own), 0);
		CHECK_RC(phyr_unpin(r), -EINVAL);
		check_message("parent");
		CHECK_RC(phyr_pin(p, 64 * KiB, 0, &own), 0);
		CHECK_LOCKED_EXACTLY(p, 64 * KiB, p, p + 64 * KiB);
		CHECK_RC(phyr_unpin(own), 0);
		_exit(0);
	}
	int st;
	CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0, "the _Fork() child failed (%#x)", st);
	CHECK_LOCKED_EXACTLY(p, 64 * KiB, p, p + 64 * KiB);
	CHECK_RC(phyr_unpin(r), 0);
	munmap(p, 64 * KiB);
}

int main(int argc, char **argv)
{
	TEST_MAIN(argc, argv);
	if (argc == 2 && strcmp(argv[1], "--first-call-worker") == 0)
		return first_call_worker();
	RUN(first_call_races_fork);
	RUN(child_of_underscore_fork);
	RUN(child_starts_with_no_ranges);
	RUN(child_leaves_parents_tables_alone);
	RUN(child_uses_parents_unregistered_ring);
	RUN(fork_while_threads_are_inside);
	RUN(fork_after_cancel_inside);
	CHECK(vmlck_bytes() == 0, "VmLck %" PRIu64 " at the end", vmlck_bytes());
	return t_done();
}
