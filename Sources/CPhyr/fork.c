// SPDX-License-Identifier: MIT
/*
 * What fork() does to libphyr.
 *
 * A child gets a copy of the address space but only the thread that forked:
 * a lock another thread held at that instant stays held forever in the child
 * (Swift's Mutex then traps the child's first call).  So every critical
 * section of libphyr runs inside the fork guard, shared; pthread_atfork takes
 * it exclusively before fork() copies anything, which waits for critical
 * sections in flight to finish and lets none start.  The copy the child gets
 * is consistent and unlocked; the child then counts one more fork epoch, and
 * libphyr's state notices the new epoch and starts afresh: a child inherits
 * no ranges and no registrations (mlock is not inherited either).
 */
#define _GNU_SOURCE
#include "phyr_kernel.h"

#include <pthread.h>

static pthread_rwlock_t fork_guard;
static _Thread_local unsigned guard_depth;
/* Set by the prepare handler when it could not take the guard (a fork from
 * inside a critical section of the same thread, e.g. from a signal handler). */
static _Thread_local int guard_skipped;
unsigned long phyr_fork_epoch_counter;

static void guard_init(void)
{
	pthread_rwlockattr_t attr;
	pthread_rwlockattr_init(&attr);
	/* A waiting fork() must not be starved by a stream of new calls. */
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&fork_guard, &attr);
	pthread_rwlockattr_destroy(&attr);
}

static void before_fork(void)
{
	guard_skipped = guard_depth > 0;
	if (!guard_skipped)
		pthread_rwlock_wrlock(&fork_guard);
}

static void after_fork_in_parent(void)
{
	if (!guard_skipped)
		pthread_rwlock_unlock(&fork_guard);
}

static void after_fork_in_child(void)
{
	/* glibc's rwlock remembers the writer's thread id, which the child's
	 * only thread does not have: start the lock anew instead of unlocking. */
	guard_init();
	guard_depth = 0;
	guard_skipped = 0;
	__atomic_add_fetch(&phyr_fork_epoch_counter, 1, __ATOMIC_RELEASE);
}

__attribute__((constructor)) static void fork_guard_setup(void)
{
	guard_init();
	pthread_atfork(before_fork, after_fork_in_parent, after_fork_in_child);
}

void phyr_shim_fork_guard_enter(void)
{
	if (guard_depth++ == 0)
		pthread_rwlock_rdlock(&fork_guard);
}

void phyr_shim_fork_guard_leave(void)
{
	if (--guard_depth == 0)
		pthread_rwlock_unlock(&fork_guard);
}
