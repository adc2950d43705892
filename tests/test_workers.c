/* SPDX-License-Identifier: MIT */
/*
 * Process models: a master that pins and registers memory and then forks
 * workers -- prefork, respawns, a worker's own child, a daemon's double
 * fork, fork while threads are inside libphyr, exec and posix_spawn -- and
 * every worker uses libphyr for itself: its own rings, pins, registrations
 * and fixed I/O with the data checked.  The master loses nothing (its I/O,
 * VmLck, VmPin and descriptors are what they were); no descriptor of
 * libphyr's reaches a child or an exec'd program; no call changes errno.
 *
 * Sized for the 8 MiB lock limit of an ordinary user with no capability:
 * io_uring charges every buffer of all of this user's processes together.
 */
#include "ring_io.h"

#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>

extern char **environ;

/* ------------------------------------------------------------ helpers */

/* Counts this process's descriptors (without the one reading the
 * directory) and how many are io_urings. */
static int count_fds(int *io_urings)
{
	DIR *d = opendir("/proc/self/fd");
	CHECK(d != NULL, "opendir /proc/self/fd: %s", strerror(errno));
	int total = 0, rings = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.' || atoi(e->d_name) == dirfd(d))
			continue;
		char target[128];
		ssize_t n = readlinkat(dirfd(d), e->d_name, target, sizeof target - 1);
		if (n <= 0)
			continue;
		target[n] = 0;
		total++;
		if (strcmp(target, "anon_inode:[io_uring]") == 0)
			rings++;
	}
	closedir(d);
	if (io_urings)
		*io_urings = rings;
	return total;
}

static void check_message(const char *needle)
{
	CHECK(strstr(phyr_last_error(), needle) != NULL, "message lacks \"%s\": %s", needle, phyr_last_error());
}

/* The master's state, made by master_setup() and checked by
 * master_intact(): a registration with fixed I/O through it, a long-term
 * range (libphyr's holder ring), a PHYR_PIN_DONTFORK range. */
static struct io_uring mring;
static char *mbuf, *mheld, *mdontfork;
static phyr_t *mpin, *mlong, *mnofork;
static ring_reg_t *mreg;
static int mfile;
static uint64_t m_vmlck, m_vmpin;
static int m_fds, m_rings;

#define MBUF (2 * MiB)
#define MHELD (2 * MiB)
#define MNOFORK (64 * KiB)

static void master_setup(void)
{
	ring_or_skip(&mring, QD);
	mbuf = base_alloc(MBUF);
	CHECK_RC(phyr_pin(mbuf, MBUF, PHYR_PIN_WRITE, &mpin), 0);
	CHECK_RC(ring_register_ranges(&mring, &mpin, 1, 0, &mreg), 0);
	mheld = thp_alloc(MHELD);
	CHECK_RC(phyr_pin(mheld, MHELD, PHYR_PIN_LONGTERM, &mlong), 0);
	mdontfork = base_alloc(MNOFORK);
	CHECK_RC(phyr_pin(mdontfork, MNOFORK, PHYR_PIN_DONTFORK, &mnofork), 0);
	mfile = pattern_file(MBUF, 0x3a57e5);
	/* libphyr opens the /proc files it reads when it first needs each (a
	 * refusal reads maps before 6.11): open them all before counting. */
	char *ro = mmap(NULL, 64 * KiB, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	phyr_t *none;
	CHECK_RC(phyr_pin(ro, 64 * KiB, PHYR_PIN_WRITE, &none), -EACCES);
	munmap(ro, 64 * KiB);
	m_vmlck = vmlck_bytes();
	m_vmpin = vmpin_bytes();
	m_fds = count_fds(&m_rings);
	/* The master's ring, libphyr's duplicate of it, a holder ring. */
	CHECK(m_rings >= 3, "the master has %d io_uring descriptors", m_rings);
}

/* After any number of workers: the master's registration reads right, and
 * its locks, pins and descriptors are what they were. */
static void master_intact(const char *after)
{
	memset(mbuf, 0, MBUF);
	fixed_io(&mring, mreg, mfile, mbuf, MBUF, 0, 0, 256 * KiB);
	CHECK(check_pattern(mbuf, MBUF, 0, 0x3a57e5) < 0, "after %s: the master's fixed read", after);
	CHECK(fdinfo_bufs(mring.ring_fd, NULL) == 1, "after %s: the master's table lists %d buffers", after,
	      fdinfo_bufs(mring.ring_fd, NULL));
	CHECK(vmlck_bytes() == m_vmlck, "after %s: VmLck %" PRIu64 ", was %" PRIu64, after, vmlck_bytes(), m_vmlck);
	/* 6.1 drops the pins of released buffers in delayed work: wait for it. */
	CHECK(vmpin_reaches(m_vmpin) == m_vmpin, "after %s: VmPin %" PRIu64 ", was %" PRIu64, after, vmpin_bytes(),
	      m_vmpin);
	int rings, fds = count_fds(&rings);
	CHECK(fds == m_fds && rings == m_rings, "after %s: %d descriptors (%d io_urings), were %d (%d)", after, fds, rings,
	      m_fds, m_rings);
	struct phyr_seg s[4];
	CHECK(segs_of(mlong, s, 4) == 1 && s[0].flags == PHYR_SEG_HUGE, "after %s: the long-term range changed", after);
}

static void master_teardown(void)
{
	CHECK_RC(ring_unregister_ranges(mreg), 0);
	CHECK_RC(phyr_unpin(mpin), 0);
	CHECK_RC(phyr_unpin(mlong), 0);
	CHECK_RC(phyr_unpin(mnofork), 0);
	CHECK(ring_has_no_table(&mring), "the master's table outlived its registration");
	io_uring_queue_exit(&mring);
	CHECK_NOTHING_LOCKED(mbuf, MBUF);
	CHECK(vmlck_bytes() == 0, "VmLck %" PRIu64 " at the end", vmlck_bytes());
	close(mfile);
	munmap(mbuf, MBUF);
	munmap(mheld, MHELD);
	munmap(mdontfork, MNOFORK);
	CHECK(vmpin_reaches(0) == 0, "VmPin %" PRIu64 " at the end", vmpin_bytes());
}

/*
 * What every worker does for itself: a ring of its own; its own memory and
 * memory it inherited, pinned and registered; fixed reads into both, the
 * data checked; a long-term pin of its own, cloned or registered into its
 * ring; everything released.  `seed` tells workers' files apart.
 */
static void worker_does_io(uint64_t seed)
{
	struct io_uring own;
	CHECK_RC(io_uring_queue_init(8, &own, 0), 0);
	char *mine = base_alloc(256 * KiB);
	phyr_t *r[3];
	CHECK_RC(phyr_pin(mine, 256 * KiB, PHYR_PIN_WRITE, &r[0]), 0);
	/* The master's memory, copied on write into this worker. */
	CHECK_RC(phyr_pin(mbuf + 512 * KiB, 256 * KiB, PHYR_PIN_WRITE, &r[1]), 0);
	char *held = base_alloc(128 * KiB);
	CHECK_RC(phyr_pin(held, 128 * KiB, PHYR_PIN_LONGTERM, &r[2]), 0);
	CHECK(vmpin_bytes() >= 128 * KiB, "the worker's long-term pin: VmPin %" PRIu64, vmpin_bytes());
	ring_reg_t *reg;
	CHECK_RC(ring_register_ranges(&own, r, 3, 0, &reg), 0);
	CHECK(fdinfo_bufs(own.ring_fd, NULL) == 3, "the worker's table lists %d buffers", fdinfo_bufs(own.ring_fd, NULL));
	int in = pattern_file(640 * KiB, seed);
	memset(mine, 0, 256 * KiB);
	fixed_io(&own, reg, in, mine, 256 * KiB, 0, 0, 64 * KiB);
	fixed_io(&own, reg, in, mbuf + 512 * KiB, 256 * KiB, 256 * KiB, 0, 64 * KiB);
	fixed_io(&own, reg, in, held, 128 * KiB, 512 * KiB, 0, 64 * KiB);
	CHECK(check_pattern(mine, 256 * KiB, 0, seed) < 0, "the worker's read into its own memory");
	CHECK(check_pattern(mbuf + 512 * KiB, 256 * KiB, 256 * KiB, seed) < 0, "the worker's read into inherited memory");
	CHECK(check_pattern(held, 128 * KiB, 512 * KiB, seed) < 0, "the worker's read into its long-term range");
	CHECK_RC(ring_unregister_ranges(reg), 0);
	for (int i = 0; i < 3; i++)
		CHECK_RC(phyr_unpin(r[i]), 0);
	CHECK(ring_has_no_table(&own), "the worker's table outlived its registration");
	CHECK_NOTHING_LOCKED(mine, 256 * KiB);
	CHECK_NOTHING_LOCKED(mbuf, MBUF);
	io_uring_queue_exit(&own);
	close(in);
	munmap(mine, 256 * KiB);
	munmap(held, 128 * KiB);
}

/* What a worker finds of the master's: no handle of it, no descriptor of
 * libphyr's (only the master's own ring, inherited), no lock; its ring
 * refused (its table is the master's), the PHYR_PIN_DONTFORK memory gone. */
static void worker_sees_a_clean_library(void)
{
	int rings;
	count_fds(&rings);
	CHECK(rings == 1, "the worker has %d io_uring descriptors: libphyr's duplicate or holder ring came along",
	      rings);
	CHECK(vmlck_bytes() == 0, "the worker has VmLck %" PRIu64, vmlck_bytes());
	CHECK_RC(phyr_unpin(mpin), -EINVAL);
	check_message("parent");
	unsigned idx;
	size_t avail;
	CHECK_RC(ring_reg_lookup(mreg, mbuf, 4096, &idx, &avail), -EINVAL);
	CHECK_RC(ring_unregister_ranges(mreg), -EINVAL);

	phyr_t *r;
	ring_reg_t *reg;
	CHECK_RC(phyr_pin(mbuf, 64 * KiB, PHYR_PIN_WRITE, &r), 0);
	CHECK_RC(ring_register_ranges(&mring, &r, 1, 0, &reg), -EBUSY);
	check_message("inherited across fork()");
	CHECK(fdinfo_bufs(mring.ring_fd, NULL) == 1, "the worker changed the master's table: %d buffers",
	      fdinfo_bufs(mring.ring_fd, NULL));
	CHECK_RC(phyr_unpin(r), 0);

	CHECK_RC(phyr_pin(mdontfork, MNOFORK, 0, &r), -EFAULT);
	check_message("PHYR_PIN_DONTFORK");
}

static void worker(void *arg)
{
	alarm(60); /* a worker stuck in libphyr dies of SIGALRM and is counted */
	worker_sees_a_clean_library();
	worker_does_io((uint64_t)(uintptr_t)arg);
}

static pid_t spawn_worker(uint64_t seed)
{
	fflush(NULL);
	pid_t pid = fork();
	CHECK(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		worker((void *)(uintptr_t)seed);
		fflush(NULL);
		_exit(0);
	}
	return pid;
}

static void reap_worker(pid_t pid, const char *what)
{
	int st;
	CHECK(waitpid(pid, &st, 0) == pid, "waitpid: %s", strerror(errno));
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s %s %d", what, WIFEXITED(st) ? "exited" : "was killed by signal",
	      WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
}

/* ------------------------------------------------------------- cases */

/* Prefork: three workers at once, each using libphyr for itself. */
static void prefork(void)
{
	master_setup();
	pid_t w[3];
	for (int i = 0; i < 3; i++)
		w[i] = spawn_worker(100 + (uint64_t)i);
	for (int i = 0; i < 3; i++)
		reap_worker(w[i], "a prefork worker");
	master_intact("three workers");
	master_teardown();
}

/* Respawns: three workers alive at a time, each replaced when it exits,
 * forty in all. */
static void respawns(void)
{
	master_setup();
	int total = rounds(40) < 6 ? 6 : rounds(40);
	pid_t alive[3];
	int started = 0;
	for (; started < 3; started++)
		alive[started] = spawn_worker(200 + (uint64_t)started);
	for (int done = 0; done < total; done++) {
		int st;
		pid_t pid = wait(&st);
		CHECK(pid > 0, "wait: %s", strerror(errno));
		CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "worker %d of %d %s %d", done, total,
		      WIFEXITED(st) ? "exited" : "was killed by signal", WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
		for (int i = 0; i < 3; i++) {
			if (alive[i] != pid)
				continue;
			alive[i] = started < total ? spawn_worker(200 + (uint64_t)started++) : 0;
		}
	}
	master_intact("forty respawns");
	master_teardown();
}

/* A worker's own child: it inherits the master's ring and the worker's,
 * which both have tables of libphyr's (refused), and uses a ring of its own. */
static struct io_uring wring;

static void grandchild(void *arg)
{
	(void)arg;
	alarm(60);
	int rings;
	count_fds(&rings);
	CHECK(rings == 2, "the grandchild has %d io_uring descriptors (the master's and the worker's rings only)",
	      rings);
	phyr_t *r;
	ring_reg_t *reg;
	CHECK_RC(phyr_pin(mbuf, 64 * KiB, PHYR_PIN_WRITE, &r), 0);
	CHECK_RC(ring_register_ranges(&wring, &r, 1, 0, &reg), -EBUSY);
	CHECK_RC(ring_register_ranges(&mring, &r, 1, 0, &reg), -EBUSY);
	CHECK_RC(phyr_unpin(r), 0);
	CHECK_RC(phyr_pin(mdontfork, PAGE, 0, &r), -EFAULT);
	check_message("PHYR_PIN_DONTFORK");
	worker_does_io(301);
}

static void worker_with_a_child(void *arg)
{
	(void)arg;
	alarm(120);
	worker_sees_a_clean_library();
	CHECK_RC(io_uring_queue_init(8, &wring, 0), 0);
	char *p = base_alloc(64 * KiB);
	phyr_t *r;
	ring_reg_t *reg;
	CHECK_RC(phyr_pin(p, 64 * KiB, PHYR_PIN_WRITE | PHYR_PIN_DONTFORK, &r), 0);
	CHECK_RC(ring_register_ranges(&wring, &r, 1, 0, &reg), 0);
	CHECK_CHILD(grandchild, NULL);
	/* The worker's table is whole after its child. */
	read_checked(&wring, reg, p, 64 * KiB, 302, "the worker, after its child");
	CHECK_RC(ring_unregister_ranges(reg), 0);
	CHECK_RC(phyr_unpin(r), 0);
	io_uring_queue_exit(&wring);
	worker_does_io(303);
}

static void two_generations(void)
{
	master_setup();
	CHECK_CHILD(worker_with_a_child, NULL);
	master_intact("a worker and its child");
	master_teardown();
}

/* A daemon: fork, setsid, fork again, the middle process exits at once; the
 * daemon closes every descriptor but its report pipe, as daemons do, and
 * then uses libphyr. */
static void daemon_body(int report)
{
	alarm(60);
	struct rlimit rl;
	int max = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 4096 ? (int)rl.rlim_cur : 4096;
	for (int fd = 3; fd < max; fd++)
		if (fd != report)
			close(fd);
	int rings;
	count_fds(&rings);
	CHECK(rings == 0, "the daemon has %d io_urings after closing every descriptor", rings);
	worker_does_io(401);
	/* A second purge closes what libphyr opened since (its /proc files, the
	 * holder ring of the long-term pin): it reopens what it needs. */
	for (int fd = 3; fd < max; fd++)
		if (fd != report)
			close(fd);
	worker_does_io(402);
}

static void a_daemon(void)
{
	master_setup();
	int pipefd[2];
	CHECK(pipe(pipefd) == 0, "pipe: %s", strerror(errno));
	fflush(NULL);
	pid_t mid = fork();
	CHECK(mid >= 0, "fork: %s", strerror(errno));
	if (mid == 0) {
		close(pipefd[0]);
		CHECK(setsid() > 0, "setsid: %s", strerror(errno));
		pid_t d = fork();
		if (d != 0)
			_exit(d > 0 ? 0 : 1);
		/* The daemon reports its exit status through the pipe: stderr
		 * carries its messages as any process's. */
		int report = pipefd[1];
		pid_t inner = fork();
		if (inner == 0) {
			daemon_body(report);
			fflush(NULL);
			_exit(0);
		}
		int st = 0;
		waitpid(inner, &st, 0);
		char result = WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 'y' : 'n';
		ssize_t w = write(report, &result, 1);
		_exit(w == 1 ? 0 : 1);
	}
	close(pipefd[1]);
	reap_worker(mid, "the daemon's first child");
	char result = 0;
	CHECK(read(pipefd[0], &result, 1) == 1 && result == 'y', "the daemon failed (read '%c')", result);
	close(pipefd[0]);
	master_intact("a daemon");
	master_teardown();
}

/* A ring number the master used comes back in a worker: the master exits
 * its ring (libphyr's duplicate keeps it open for the registration) and the
 * worker's new ring gets the same number.  It is the worker's own ring. */
static void worker_gets_the_same_number(void *arg)
{
	int old_fd = (int)(intptr_t)arg;
	alarm(60);
	struct io_uring own;
	CHECK_RC(io_uring_queue_init(8, &own, 0), 0);
	CHECK(own.ring_fd == old_fd, "the worker's ring got fd %d, not the master's old %d", own.ring_fd, old_fd);
	char *p = base_alloc(64 * KiB);
	phyr_t *r;
	ring_reg_t *reg;
	CHECK_RC(phyr_pin(p, 64 * KiB, PHYR_PIN_WRITE, &r), 0);
	CHECK_RC(ring_register_ranges(&own, &r, 1, 0, &reg), 0);
	read_checked(&own, reg, p, 64 * KiB, 501, "the worker's own ring");
	CHECK_RC(ring_unregister_ranges(reg), 0);
	CHECK_RC(phyr_unpin(r), 0);
	io_uring_queue_exit(&own);
}

static void ring_number_reused(void)
{
	struct io_uring ring;
	ring_or_skip(&ring, 8);
	int fd = ring.ring_fd;
	char *p = base_alloc(64 * KiB);
	phyr_t *r;
	ring_reg_t *reg;
	CHECK_RC(phyr_pin(p, 64 * KiB, PHYR_PIN_WRITE, &r), 0);
	CHECK_RC(ring_register_ranges(&ring, &r, 1, 0, &reg), 0);
	io_uring_queue_exit(&ring);
	CHECK_CHILD(worker_gets_the_same_number, (void *)(intptr_t)fd);
	CHECK_RC(ring_unregister_ranges(reg), 0);
	CHECK_RC(phyr_unpin(r), 0);
	CHECK_NOTHING_LOCKED(p, 64 * KiB);
	munmap(p, 64 * KiB);
}

/* Fifteen forks while two threads pin, register, unregister and unpin in a
 * loop: every child can use libphyr at once, never hangs, never dies. */
static volatile int stop_busy;
static int busy_ready;

static void *busy(void *arg)
{
	uint64_t seed = 0x6a09e667f3bcc908ULL + (uint64_t)(uintptr_t)arg;
	struct io_uring r;
	CHECK_RC(io_uring_queue_init(8, &r, 0), 0);
	__atomic_add_fetch(&busy_ready, 1, __ATOMIC_RELEASE);
	char *p = base_alloc(1 * MiB);
	while (!stop_busy) {
		uint64_t off = next_rand(&seed) % (768 * KiB);
		phyr_t *a;
		ring_reg_t *reg;
		CHECK_RC(phyr_pin(p + off, 1 + next_rand(&seed) % (256 * KiB), PHYR_PIN_WRITE, &a), 0);
		CHECK_RC(ring_register_ranges(&r, &a, 1, 0, &reg), 0);
		CHECK_RC(ring_unregister_ranges(reg), 0);
		CHECK_RC(phyr_unpin(a), 0);
	}
	io_uring_queue_exit(&r);
	munmap(p, 1 * MiB);
	return NULL;
}

static void child_while_busy(void *arg)
{
	alarm(30);
	int rings;
	count_fds(&rings);
	/* The master's ring and the two threads' (inherited, as any
	 * descriptor): libphyr's duplicates and holder rings are gone. */
	CHECK(rings == 3, "the child has %d io_urings", rings);
	worker_does_io((uint64_t)(uintptr_t)arg);
}

static void forks_while_threads_call(void)
{
	master_setup();
	pthread_t t[2];
	stop_busy = 0;
	busy_ready = 0;
	for (uintptr_t i = 0; i < 2; i++)
		CHECK(pthread_create(&t[i], NULL, busy, (void *)i) == 0, "pthread_create");
	while (__atomic_load_n(&busy_ready, __ATOMIC_ACQUIRE) < 2)
		usleep(100);
	for (int i = 0; i < 15; i++) {
		usleep(3000);
		CHECK_CHILD(child_while_busy, (void *)(uintptr_t)(600 + i));
	}
	stop_busy = 1;
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	master_intact("fifteen forks while threads called libphyr");
	master_teardown();
}

/* A child with threads of its own, all calling libphyr at once: its locks
 * are contended in the child, whose threads have ids its parent's never had
 * (a lock that records its owner's thread id, as Swift's Mutex does, fails
 * the child there). */
static void *child_thread(void *arg)
{
	uint64_t seed = 0xbb67ae8584caa73bULL + (uint64_t)(uintptr_t)arg;
	struct io_uring r;
	CHECK_RC(io_uring_queue_init(8, &r, 0), 0);
	char *p = base_alloc(512 * KiB);
	for (int i = 0; i < rounds(300); i++) {
		phyr_t *a, *b = NULL;
		ring_reg_t *reg;
		uint64_t off = next_rand(&seed) % (256 * KiB);
		CHECK_RC(phyr_pin(p + off, 1 + next_rand(&seed) % (128 * KiB), PHYR_PIN_WRITE, &a), 0);
		size_t len;
		CHECK_RC(phyr_range(a, NULL, &len), 0);
		if (len > 1)
			CHECK_RC(phyr_split(a, len / 2, &b), 0);
		CHECK_RC(ring_register_ranges(&r, &a, 1, 0, &reg), 0);
		CHECK_RC(ring_unregister_ranges(reg), 0);
		CHECK_RC(phyr_unpin(a), 0);
		if (b)
			CHECK_RC(phyr_unpin(b), 0);
	}
	io_uring_queue_exit(&r);
	munmap(p, 512 * KiB);
	return NULL;
}

static void child_with_threads(void *arg)
{
	(void)arg;
	alarm(120);
	pthread_t t[3];
	for (uintptr_t i = 0; i < 3; i++)
		CHECK(pthread_create(&t[i], NULL, child_thread, (void *)i) == 0, "pthread_create");
	child_thread((void *)3);
	for (int i = 0; i < 3; i++)
		pthread_join(t[i], NULL);
	CHECK(vmlck_bytes() == 0, "the child's VmLck %" PRIu64, vmlck_bytes());
}

static void threads_in_a_child(void)
{
	master_setup();
	for (int i = 0; i < 3; i++)
		CHECK_CHILD(child_with_threads, NULL);
	master_intact("children with threads");
	master_teardown();
}

/* exec and posix_spawn: the new program gets no descriptor of libphyr's --
 * holder rings, ring duplicates, /proc files -- while the master holds all
 * of them, and while a thread is inside libphyr at that moment. */
static int count_in_new_program(void)
{
	/* Only what this process passes on: descriptors without FD_CLOEXEC. */
	int rings;
	int total = count_fds(&rings);
	printf("%d %d\n", total, rings);
	return 0;
}

/* Descriptors an exec of this process would pass on, by their own flags. */
static int inheritable_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	CHECK(d != NULL, "opendir: %s", strerror(errno));
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		int fd = atoi(e->d_name);
		if (fd == dirfd(d))
			continue;
		int flags = fcntl(fd, F_GETFD);
		if (flags >= 0 && !(flags & FD_CLOEXEC))
			n++;
	}
	closedir(d);
	return n;
}

static void read_counts(int fd, int *total, int *rings)
{
	char buf[64] = "";
	ssize_t n = read(fd, buf, sizeof buf - 1);
	CHECK(n > 0 && sscanf(buf, "%d %d", total, rings) == 2, "the new program said \"%s\"", n > 0 ? buf : "");
}

static void check_new_program(int use_spawn, int expect_total)
{
	int out[2];
	CHECK(pipe2(out, O_CLOEXEC) == 0, "pipe2: %s", strerror(errno));
	char *argv[] = { "test_workers", "--count-fds", NULL };
	pid_t pid;
	if (use_spawn) {
		posix_spawn_file_actions_t fa;
		posix_spawn_file_actions_init(&fa);
		posix_spawn_file_actions_adddup2(&fa, out[1], 1);
		CHECK(posix_spawn(&pid, "/proc/self/exe", &fa, NULL, argv, environ) == 0, "posix_spawn");
		posix_spawn_file_actions_destroy(&fa);
	} else {
		fflush(NULL);
		pid = fork();
		CHECK(pid >= 0, "fork");
		if (pid == 0) {
			dup2(out[1], 1);
			execv("/proc/self/exe", argv);
			_exit(99);
		}
	}
	close(out[1]);
	int total = -1, rings = -1;
	read_counts(out[0], &total, &rings);
	close(out[0]);
	reap_worker(pid, use_spawn ? "the spawned program" : "the exec'd program");
	CHECK(rings == 0, "%s: the new program got %d io_uring descriptors", use_spawn ? "posix_spawn" : "exec", rings);
	CHECK(total == expect_total, "%s: the new program has %d descriptors, %d were inheritable",
	      use_spawn ? "posix_spawn" : "exec", total, expect_total);
}

static void exec_and_spawn(void)
{
	master_setup();
	int expect = inheritable_fds();
	for (int use_spawn = 0; use_spawn < 2; use_spawn++)
		check_new_program(use_spawn, expect);
	pthread_t t[2];
	stop_busy = 0;
	for (uintptr_t i = 0; i < 2; i++)
		CHECK(pthread_create(&t[i], NULL, busy, (void *)i) == 0, "pthread_create");
	for (int i = 0; i < 10; i++) {
		usleep(2000);
		check_new_program(i & 1, expect);
	}
	stop_busy = 1;
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	master_intact("exec and posix_spawn");
	master_teardown();
}

/* Many rings with tables of libphyr's: a child closes every duplicate, and
 * keeps exactly the master's own ring descriptors. */
static void child_counts_only_callers_rings(void *arg)
{
	int want = (int)(intptr_t)arg, rings;
	count_fds(&rings);
	CHECK(rings == want, "the child has %d io_urings; the master made %d itself", rings, want);
}

static void many_rings(void)
{
	enum { N = 100 };
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 3 * N)
		skip("RLIMIT_NOFILE is %llu: too few descriptors for %d rings", (unsigned long long)rl.rlim_cur, N);
	static struct io_uring rings[N];
	static ring_reg_t *regs[N];
	int base; /* holder rings of earlier cases: libphyr's, kept */
	count_fds(&base);
	ring_or_skip(&rings[0], 4); /* before anything is pinned: a skipped case leaves nothing */
	char *p = base_alloc(64 * KiB);
	phyr_t *r;
	CHECK_RC(phyr_pin(p, 64 * KiB, PHYR_PIN_WRITE, &r), 0);
	for (int i = 0; i < N; i++) {
		if (i > 0)
			CHECK_RC(io_uring_queue_init(4, &rings[i], 0), 0);
		CHECK_RC(ring_register_ranges(&rings[i], &r, 1, 0, &regs[i]), 0);
	}
	int before;
	count_fds(&before);
	CHECK(before == base + 2 * N, "%d io_urings: libphyr keeps a duplicate of each ring", before);
	CHECK_CHILD(child_counts_only_callers_rings, (void *)(intptr_t)N);
	for (int i = 0; i < N; i++) {
		CHECK_RC(ring_unregister_ranges(regs[i]), 0);
		io_uring_queue_exit(&rings[i]);
	}
	CHECK_RC(phyr_unpin(r), 0);
	int after;
	count_fds(&after);
	CHECK(after == base, "%d io_urings left, %d before", after, base);
	munmap(p, 64 * KiB);
}

/* No function changes errno, on success or failure, in any thread, in a
 * child too. */
#define ERRNO_KEPT(call) do { \
	errno = 4242; \
	(void)(call); \
	CHECK(errno == 4242, "%s changed errno to %d (%s)", #call, errno, strerror(errno)); \
} while (0)

static void every_call_keeps_errno(void)
{
	struct io_uring ring;
	int have_ring = io_uring_queue_init(8, &ring, 0) == 0;
	char *p = thp_alloc(2 * MiB);
	phyr_t *r = NULL, *tail = NULL, *bad = (phyr_t *)(uintptr_t)0x1234;
	ring_reg_t *reg = NULL;
	struct phyr_seg s[4];
	struct ring_buf b[4];
	void *a;
	size_t len, avail;
	unsigned idx;
	ERRNO_KEPT(phyr_version());
	ERRNO_KEPT(phyr_last_error());
	ERRNO_KEPT(phyr_pin(p, 2 * MiB, PHYR_PIN_WRITE, &r));
	ERRNO_KEPT(phyr_pin(p, 0, 0, &tail));                          /* EINVAL */
	ERRNO_KEPT(phyr_pin((void *)(uintptr_t)4096, 4096, 0, &tail)); /* EFAULT */
	ERRNO_KEPT(phyr_pin(p, 4096, 0x80, &tail));                    /* unknown flag */
	ERRNO_KEPT(phyr_range(r, &a, &len));
	ERRNO_KEPT(phyr_range(bad, &a, &len));
	ERRNO_KEPT(phyr_segs(r, s, 4));
	ERRNO_KEPT(phyr_segs(bad, s, 4));
	ERRNO_KEPT(phyr_split(r, 1 * MiB + 100, &tail));
	ERRNO_KEPT(phyr_split(r, 0, &tail));
	ERRNO_KEPT(phyr_last_error());
	if (have_ring) {
		phyr_t *both[2] = { r, tail };
		ERRNO_KEPT(ring_register_ranges(&ring, both, 2, 0, &reg));
		ERRNO_KEPT(ring_register_ranges(&ring, both, 2, 1, &reg)); /* flags */
		ERRNO_KEPT(ring_reg_bufs(reg, b, 4));
		ERRNO_KEPT(ring_reg_lookup(reg, p + 4096, 100, &idx, &avail));
		ERRNO_KEPT(ring_reg_lookup(reg, p + 3 * MiB, 100, &idx, &avail)); /* ENOENT */
		ERRNO_KEPT(ring_reg_lookup((ring_reg_t *)bad, p, 100, &idx, &avail));
		ERRNO_KEPT(ring_unregister_ranges(reg));
		ERRNO_KEPT(ring_unregister_ranges(reg)); /* released */
	}
	ERRNO_KEPT(phyr_unpin(tail));
	ERRNO_KEPT(phyr_unpin(r));
	ERRNO_KEPT(phyr_unpin(r)); /* released: EINVAL */
	ERRNO_KEPT(phyr_unpin(NULL));
	if (have_ring) {
		/* Long-term: holder rings, clones, a split that re-pins. */
		ERRNO_KEPT(phyr_pin(p, 2 * MiB, PHYR_PIN_LONGTERM | PHYR_PIN_DONTFORK, &r));
		ERRNO_KEPT(phyr_split(r, 1 * MiB + 100, &tail));
		ERRNO_KEPT(ring_register_ranges(&ring, &r, 1, 0, &reg));
		ERRNO_KEPT(ring_unregister_ranges(reg));
		ERRNO_KEPT(phyr_unpin(tail));
		ERRNO_KEPT(phyr_unpin(r));
		ERRNO_KEPT(phyr_pin(p, 2 * MiB, PHYR_PIN_LONGTERM | 0x40, &r)); /* unknown flag */
		io_uring_queue_exit(&ring);
	}
	/* A read-only mapping: EACCES. */
	char *ro = mmap(NULL, 64 * KiB, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ERRNO_KEPT(phyr_pin(ro, 64 * KiB, PHYR_PIN_WRITE, &r));
	munmap(ro, 64 * KiB);
	munmap(p, 2 * MiB);
}

static void errno_in_child(void *arg)
{
	(void)arg;
	every_call_keeps_errno();
	/* The parent's handles, refused in the child. */
	ERRNO_KEPT(phyr_unpin(mpin));
	ERRNO_KEPT(ring_unregister_ranges(mreg));
}

static void *errno_in_thread(void *arg)
{
	(void)arg;
	every_call_keeps_errno();
	return NULL;
}

static void errno_untouched(void)
{
	master_setup();
	every_call_keeps_errno();
	pthread_t t[2];
	for (int i = 0; i < 2; i++)
		CHECK(pthread_create(&t[i], NULL, errno_in_thread, NULL) == 0, "pthread_create");
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	CHECK_CHILD(errno_in_child, NULL);
	/* fork() itself: the atfork handlers keep errno too. */
	errno = 4243;
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0)
		_exit(errno == 4243 ? 0 : 1);
	int parent_errno = errno;
	CHECK(pid > 0 && parent_errno == 4243, "fork changed the parent's errno to %d", parent_errno);
	reap_worker(pid, "a child checking errno after fork");
	master_intact("the errno checks");
	master_teardown();
}

/* ---------------------------------------------------------------- main */

int main(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "--count-fds") == 0)
		return count_in_new_program();
	TEST_MAIN(argc, argv);
	RUN(prefork);
	RUN(respawns);
	RUN(two_generations);
	RUN(a_daemon);
	RUN(ring_number_reused);
	RUN(forks_while_threads_call);
	RUN(threads_in_a_child);
	RUN(exec_and_spawn);
	RUN(many_rings);
	RUN(errno_untouched);
	CHECK(vmlck_bytes() == 0, "VmLck %" PRIu64 " at the end", vmlck_bytes());
	return t_done();
}
