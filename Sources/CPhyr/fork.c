// SPDX-License-Identifier: MIT
/*
 * What fork() does to libphyr.
 *
 * A child gets a copy of the address space but only the thread that forked:
 * a lock another thread held at that instant stays held forever in the child
 * (Swift's Mutex then traps the child's first call), and so does a lazy
 * global another thread was initialising.  So every call into libphyr warms
 * its globals inside the fork guard before anything else, and every critical
 * section runs inside the guard, shared; pthread_atfork takes it exclusively
 * before fork() copies anything, which waits for those in flight to finish
 * and lets none start.  The copy the child gets is consistent and unlocked;
 * the child then counts one more fork epoch, and libphyr's state notices the
 * new epoch and starts afresh: a child inherits no ranges and no
 * registrations (mlock is not inherited either).
 *
 * A child made without the atfork handlers (_Fork(), clone(2) without
 * CLONE_VM) is noticed too, by a page the kernel wipes in every child
 * (MADV_WIPEONFORK); only a single-threaded process may fork that way.
 */
#define _GNU_SOURCE
#include "phyr_kernel.h"

#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef MADV_WIPEONFORK
#define MADV_WIPEONFORK 18
#endif

static pthread_rwlock_t fork_guard;
static _Thread_local unsigned guard_depth;
static _Thread_local int guard_cancel_state;
/* Set by the prepare handler when it could not take the guard: a fork from a
 * signal handler that interrupted a critical section of the same thread. */
static _Thread_local int guard_skipped;
unsigned long phyr_fork_epoch_counter;
static unsigned long token_at_load = 1;
volatile unsigned long *phyr_fork_wiped_token = &token_at_load;
int phyr_globals_warm;

/* Lookups resolve registration handles through this table, with no lock and
 * no lazy initialisation (it is zero at load). */
uintptr_t phyr_published_index[PHYR_REGISTRATIONS_MAX];

/* The identities (device, inode) of the io_urings this process had open when
 * it was forked: they are shared with the parent. */
static struct phyr_file_identity *inherited_rings;
static size_t inherited_count;

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

/* Which of the child's descriptors are io_urings: they are its parent's
 * rings.  Only for processes that called libphyr at all. */
static void note_inherited_rings(void)
{
	free(inherited_rings);
	inherited_rings = NULL;
	inherited_count = 0;
	if (!__atomic_load_n(&phyr_globals_warm, __ATOMIC_RELAXED))
		return;
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return;
	size_t cap = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		char link[64], target[32];
		snprintf(link, sizeof link, "/proc/self/fd/%s", e->d_name);
		ssize_t n = readlink(link, target, sizeof target - 1);
		if (n <= 0)
			continue;
		target[n] = 0;
		struct stat st;
		if (strcmp(target, "anon_inode:[io_uring]") != 0 || stat(link, &st) != 0)
			continue;
		if (inherited_count == cap) {
			cap = cap ? 2 * cap : 8;
			struct phyr_file_identity *grown = realloc(inherited_rings, cap * sizeof *grown);
			if (!grown)
				break;
			inherited_rings = grown;
		}
		inherited_rings[inherited_count++] = (struct phyr_file_identity){ st.st_dev, st.st_ino };
	}
	closedir(d);
}

/* libphyr's holder rings (Holder.swift): a child closes its copies at once,
 * so the parent's long-term pins never outlive the parent in a child that
 * never calls libphyr.  Changed only inside the fork guard. */
static int phyr_holder_fds[PHYR_HOLDERS_MAX];
static int phyr_holder_count;

void phyr_shim_holder_opened(int fd)
{
	if (phyr_holder_count < PHYR_HOLDERS_MAX)
		phyr_holder_fds[phyr_holder_count++] = fd;
}

void phyr_shim_holders_forgotten(void)
{
	phyr_holder_count = 0;
}

static void close_inherited_holders(void)
{
	for (int i = 0; i < phyr_holder_count; i++)
		close(phyr_holder_fds[i]);
	phyr_holder_count = 0;
}

static void after_fork_in_child(void)
{
	/* glibc's rwlock remembers the writer's thread id, which the child's
	 * only thread does not have: start the lock anew instead of unlocking.
	 * A section this thread was inside when a signal handler forked goes on
	 * in the child and will leave the guard: hold it for that. */
	guard_init();
	if (guard_skipped && guard_depth > 0)
		pthread_rwlock_rdlock(&fork_guard);
	else
		guard_depth = 0;
	guard_skipped = 0;
	close_inherited_holders();
	note_inherited_rings();
	__atomic_add_fetch(&phyr_fork_epoch_counter, 1, __ATOMIC_RELEASE);
}

void phyr_shim_forked_without_handlers(void)
{
	*phyr_fork_wiped_token = 1;
	if (guard_depth == 0)
		guard_init();
	note_inherited_rings();
	__atomic_add_fetch(&phyr_fork_epoch_counter, 1, __ATOMIC_RELEASE);
}

int phyr_shim_ring_inherited(uint64_t device, uint64_t inode)
{
	phyr_shim_fork_epoch(); /* a fork without handlers notes them first */
	for (size_t i = 0; i < inherited_count; i++)
		if (inherited_rings[i].device == device && inherited_rings[i].inode == inode)
			return 1;
	return 0;
}

__attribute__((constructor)) static void fork_guard_setup(void)
{
	guard_init();
	pthread_atfork(before_fork, after_fork_in_parent, after_fork_in_child);
	long page = sysconf(_SC_PAGESIZE);
	void *p = mmap(NULL, (size_t)page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p != MAP_FAILED && madvise(p, (size_t)page, MADV_WIPEONFORK) == 0) {
		phyr_fork_wiped_token = p;
		*phyr_fork_wiped_token = 1;
	} else {
		if (p != MAP_FAILED)
			munmap(p, (size_t)page);
		/* before 4.14: the handlers only (the token at load stays 1) */
	}
}

void phyr_shim_fork_guard_enter(void)
{
	if (guard_depth++ == 0) {
		/* A thread cancelled inside a critical section would hold the guard
		 * for good, and every later fork() in the process would hang. */
		pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &guard_cancel_state);
		pthread_rwlock_rdlock(&fork_guard);
	}
}

void phyr_shim_fork_guard_leave(void)
{
	if (--guard_depth == 0) {
		pthread_rwlock_unlock(&fork_guard);
		pthread_setcancelstate(guard_cancel_state, NULL);
	}
}
