// SPDX-License-Identifier: MIT
/*
 * What fork() does to libphyr.
 *
 * A child gets a copy of the address space but only the thread that forked:
 * a lock another thread held at that instant stays held forever in the child,
 * and so does a lazy global another thread was initialising (libphyr's, or a
 * piece of the Swift runtime's).  So every call into libphyr runs inside the
 * fork guard, and fork() waits, in its prepare handler, until no call is in
 * flight and lets none start: the copy the child gets is consistent and
 * unlocked.
 *
 * The guard costs a call no shared write: each thread that calls libphyr has
 * a record of its own, and a call only marks its own record busy, fences, and
 * checks the process-wide "forking" word (Dekker's handshake with the forker,
 * which sets that word, fences, and waits for every record to go idle).  The
 * records are never freed: a thread's is recycled when it exits.  A call that
 * blocks in the kernel for as long as a ring's requests take (emptying a
 * table) steps out of the guard meanwhile, holding only its ring's lock,
 * which a child never touches.
 *
 * The child then counts one more fork epoch, and libphyr's state notices the
 * new epoch and starts afresh: a child inherits no ranges and no
 * registrations (mlock is not inherited either).  The descriptors libphyr
 * keeps beyond a call -- its holder rings, its duplicates of callers' rings,
 * its /proc files -- are closed in the child at once, however many: a holder
 * ring kept open in a child would keep the parent's pages pinned and charged
 * for the child's whole life.  The identities of the callers' rings libphyr
 * had buffer tables in are remembered: those rings are shared with the
 * parent, and only they are refused to the child.
 *
 * A child made without the atfork handlers (_Fork(), clone(2) without
 * CLONE_VM) is noticed too, by a page the kernel wipes in every child
 * (MADV_WIPEONFORK), at its first call; only a single-threaded process may
 * fork that way.
 *
 * No function here changes errno: the handlers and every call save and
 * restore it.  libphyr is not async-signal-safe (it allocates): a signal
 * handler must not call it.
 */
#define _GNU_SOURCE
#include "phyr_kernel.h"
#include "fork_internal.h"

#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#ifndef MADV_WIPEONFORK
#define MADV_WIPEONFORK 18
#endif

unsigned long phyr_fork_epoch_counter;
static unsigned long token_at_load = 1;
volatile unsigned long *phyr_fork_wiped_token = &token_at_load;
int phyr_globals_warm;

/* ------------------------------------------------------------ the guard */

struct caller {
	/* 1 while this thread is inside a call (its outermost one). */
	int inside;
	/* 1 while a thread owns the record. */
	int taken;
	struct caller *next;
};

static struct caller *callers;          /* pushed only, never freed */
static pthread_mutex_t callers_lock = PTHREAD_MUTEX_INITIALIZER;
/* Serialises forks (and, without memory for a record, calls). */
static pthread_mutex_t forking_lock = PTHREAD_MUTEX_INITIALIZER;
/* Nonzero while a fork waits or runs: callers wait on it (a futex word). */
static int forking;

static _Thread_local struct caller *me;
static _Thread_local unsigned depth;
static _Thread_local int saved_cancel_state;
/* This thread is forking: between libphyr's prepare handler and the end of
 * its parent or child handler.  Its calls meanwhile (another library's
 * atfork handler calling libphyr) take no guard: nothing else runs. */
static _Thread_local int forker;
/* The outermost call of this thread entered without marking its record
 * (the forker's calls), or holding the forking lock (no record to be had). */
static _Thread_local int unmarked;
static _Thread_local int holds_forking_lock;
/* The prepare handler ran inside a call of the forking thread: it did not
 * wait for that call. */
static _Thread_local int forked_inside;

static pthread_key_t exit_key;

/* Runs at the exit of a thread that called libphyr: its record is free for
 * the next new thread. */
static void caller_exited(void *record)
{
	struct caller *c = record;
	me = NULL;
	__atomic_store_n(&c->inside, 0, __ATOMIC_RELEASE);
	__atomic_store_n(&c->taken, 0, __ATOMIC_RELEASE);
}

static struct caller *my_record(void)
{
	if (__builtin_expect(me != NULL, 1))
		return me;
	struct caller *c;
	pthread_mutex_lock(&callers_lock);
	for (c = callers; c; c = c->next)
		if (!__atomic_load_n(&c->taken, __ATOMIC_ACQUIRE))
			break;
	if (!c) {
		c = calloc(1, sizeof *c);
		if (c) {
			c->next = callers;
			callers = c;
		}
	}
	if (c)
		__atomic_store_n(&c->taken, 1, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&callers_lock);
	if (!c)
		return NULL;
	me = c;
	pthread_setspecific(exit_key, c);
	return c;
}

/* Marks this thread's record busy; steps aside while a fork runs. */
static void mark_inside(struct caller *c)
{
	for (;;) {
		__atomic_store_n(&c->inside, 1, __ATOMIC_RELAXED);
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		if (!__atomic_load_n(&forking, __ATOMIC_RELAXED))
			return;
		__atomic_store_n(&c->inside, 0, __ATOMIC_RELEASE);
		phyr_futex(&c->inside, FUTEX_WAKE, 1, NULL);
		int f;
		while ((f = __atomic_load_n(&forking, __ATOMIC_ACQUIRE)) != 0)
			phyr_futex(&forking, FUTEX_WAIT, f, NULL);
	}
}

static void mark_outside(struct caller *c)
{
	__atomic_store_n(&c->inside, 0, __ATOMIC_RELEASE);
	/* Wake a forker waiting for this call.  No fence between the store and
	 * the load: a forker that misses the wake sleeps in slices and looks
	 * again. */
	if (__builtin_expect(__atomic_load_n(&forking, __ATOMIC_RELAXED) != 0, 0))
		phyr_futex(&c->inside, FUTEX_WAKE, 1, NULL);
}

static void guard_enter(void)
{
	if (depth > 0) {
		depth++;
		return;
	}
	phyr_shim_fork_epoch(); /* a child made without the handlers starts afresh first */
	/* A thread cancelled inside a call would stay inside for good, and every
	 * later fork() in the process would wait for it. */
	int cancel;
	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cancel);
	struct caller *c = forker ? NULL : my_record();
	if (forker) {
		unmarked = 1;
	} else if (!c) {
		pthread_mutex_lock(&forking_lock);
		holds_forking_lock = 1;
	} else {
		mark_inside(c);
	}
	saved_cancel_state = cancel;
	depth = 1;
}

static void guard_leave(void)
{
	if (depth > 1) {
		depth--;
		return;
	}
	int cancel = saved_cancel_state;
	depth = 0;
	if (unmarked) {
		unmarked = 0;
	} else if (holds_forking_lock) {
		holds_forking_lock = 0;
		pthread_mutex_unlock(&forking_lock);
	} else if (me) {
		mark_outside(me);
	}
	pthread_setcancelstate(cancel, NULL);
}

void phyr_shim_fork_guard_enter(void)
{
	guard_enter();
}

void phyr_shim_fork_guard_leave(void)
{
	guard_leave();
}

void phyr_shim_fork_guard_step_out(void)
{
	if (depth == 0 || unmarked)
		return;
	if (holds_forking_lock)
		pthread_mutex_unlock(&forking_lock);
	else if (me)
		mark_outside(me);
}

void phyr_shim_fork_guard_step_in(void)
{
	if (depth == 0 || unmarked)
		return;
	if (holds_forking_lock)
		pthread_mutex_lock(&forking_lock);
	else if (me)
		mark_inside(me);
}

int phyr_shim_call_enter(void)
{
	int saved = errno;
	guard_enter();
	return saved;
}

void phyr_shim_call_leave(int saved_errno)
{
	guard_leave();
	errno = saved_errno;
}

int phyr_shim_errno_save(void)
{
	return errno;
}

void phyr_shim_errno_restore(int saved_errno)
{
	errno = saved_errno;
}

/* ----------------------------------------------------------- handlers */

static void before_fork(void)
{
	int saved = errno;
	forker = 1;
	forked_inside = depth > 0;
	if (!holds_forking_lock)
		pthread_mutex_lock(&forking_lock);
	__atomic_store_n(&forking, 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	/* Every call in flight finishes; none starts. */
	pthread_mutex_lock(&callers_lock);
	for (struct caller *c = callers; c; c = c->next) {
		if (c == me && forked_inside)
			continue;
		const struct timespec slice = { 0, 1000000 };
		int busy;
		while ((busy = __atomic_load_n(&c->inside, __ATOMIC_ACQUIRE)) != 0)
			phyr_futex(&c->inside, FUTEX_WAIT, busy, &slice);
	}
	/* callers_lock stays held: no thread takes a record mid-fork. */
	errno = saved;
}

static void after_fork_in_parent(void)
{
	int saved = errno;
	pthread_mutex_unlock(&callers_lock);
	__atomic_store_n(&forking, 0, __ATOMIC_RELEASE);
	phyr_futex(&forking, FUTEX_WAKE, 0x7fffffff, NULL);
	if (!holds_forking_lock)
		pthread_mutex_unlock(&forking_lock);
	forker = 0;
	errno = saved;
}

/* The child's only thread is the one that forked: every other record is
 * free (and idle: the prepare handler waited, or a fork without handlers
 * came from a single thread). */
static void reset_records(void)
{
	for (struct caller *c = callers; c; c = c->next) {
		if (c == me)
			continue;
		c->inside = 0;
		c->taken = 0;
	}
	if (me)
		me->inside = depth > 0 && !unmarked && !holds_forking_lock;
}

static void start_child(void)
{
	/* Locks a fork without handlers may have copied held. */
	pthread_mutex_init(&callers_lock, NULL);
	pthread_mutex_init(&forking_lock, NULL);
	if (holds_forking_lock)
		pthread_mutex_lock(&forking_lock); /* the call this thread forked inside still holds it */
	forking = 0;
	reset_records();
	phyr_forget_parents_descriptors();
	phyr_forget_self_files();
	__atomic_add_fetch(&phyr_fork_epoch_counter, 1, __ATOMIC_RELEASE);
	__atomic_store_n(phyr_fork_wiped_token, 1, __ATOMIC_RELEASE);
}

static void after_fork_in_child(void)
{
	int saved = errno;
	start_child();
	forked_inside = 0;
	forker = 0;
	errno = saved;
}

/* The first thread to see the wiped token starts the child; any other
 * (a handler-less child that made threads before calling libphyr) waits
 * for it. */
void phyr_shim_forked_without_handlers(void)
{
	int saved = errno;
	unsigned long expected = 0;
	if (__atomic_compare_exchange_n(phyr_fork_wiped_token, &expected, 2, 0, __ATOMIC_ACQUIRE, __ATOMIC_ACQUIRE))
		start_child();
	else
		while (__atomic_load_n(phyr_fork_wiped_token, __ATOMIC_ACQUIRE) != 1)
			sched_yield();
	errno = saved;
}

__attribute__((constructor)) static void fork_guard_setup(void)
{
	int saved = errno;
	pthread_key_create(&exit_key, caller_exited);
	pthread_atfork(before_fork, after_fork_in_parent, after_fork_in_child);
	long page = sysconf(_SC_PAGESIZE);
	void *p = mmap(NULL, (size_t)page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p != MAP_FAILED && madvise(p, (size_t)page, MADV_WIPEONFORK) == 0) {
		phyr_fork_wiped_token = p;
		*phyr_fork_wiped_token = 1;
	} else if (p != MAP_FAILED) {
		munmap(p, (size_t)page); /* before 4.14: the handlers only (the token at load stays 1) */
	}
	errno = saved;
}
