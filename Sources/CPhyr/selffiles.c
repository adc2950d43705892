// SPDX-License-Identifier: MIT
#define _GNU_SOURCE
#include "phyr_kernel.h"
#include "fork_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

/*
 * /proc/self/maps and /proc/self/pagemap, opened once and kept: every pin
 * asks them.  Each use checks that the number still names the file opened
 * (one fstat): a program may close every descriptor (a daemon) and open
 * anything at that number next -- another process's maps among them, whose
 * answers would be about that process.  Read without a lock (a sequence
 * count guards the three words); reopened under one.  A forked child's
 * copies are the parent's files, closed by the fork: it starts with none.
 */
struct self_file {
	unsigned seq;
	int fd;
	uint64_t device, inode;
};

static struct self_file self_files[2] = { { 0, -1, 0, 0 }, { 0, -1, 0, 0 } };
static pthread_mutex_t self_files_lock = PTHREAD_MUTEX_INITIALIZER;

int phyr_shim_self_file(int which)
{
	if (which < 0 || which > 1)
		return -EINVAL;
	phyr_shim_fork_epoch(); /* a child made without the handlers drops its parent's first */
	struct self_file *f = &self_files[which];
	unsigned seq = __atomic_load_n(&f->seq, __ATOMIC_ACQUIRE);
	if (!(seq & 1)) {
		int fd = __atomic_load_n(&f->fd, __ATOMIC_RELAXED);
		uint64_t device = __atomic_load_n(&f->device, __ATOMIC_RELAXED);
		uint64_t inode = __atomic_load_n(&f->inode, __ATOMIC_RELAXED);
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		if (__atomic_load_n(&f->seq, __ATOMIC_RELAXED) == seq && phyr_fd_names(fd, device, inode))
			return fd;
	}
	pthread_mutex_lock(&self_files_lock);
	int rc;
	if (phyr_fd_names(f->fd, f->device, f->inode)) {
		rc = f->fd;
	} else {
		/* Closed behind libphyr's back: that number is not libphyr's. */
		if (f->fd >= 0)
			phyr_shim_kept_fd_forget(f->fd, f->device, f->inode);
		int fd;
		do
			fd = open(which == 0 ? "/proc/self/maps" : "/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
		while (fd < 0 && errno == EINTR);
		struct stat st;
		if (fd < 0) {
			rc = -errno;
		} else {
			fd = phyr_shim_kept_fd_moved_high(fd);
			if (fstat(fd, &st) != 0) {
				rc = -errno;
				close(fd);
			} else if ((rc = phyr_shim_kept_fd_add(fd, PHYR_KEPT_PROC)) != 0) {
				close(fd);
			} else {
				rc = fd;
			}
		}
		__atomic_store_n(&f->seq, f->seq + 1, __ATOMIC_RELAXED);
		__atomic_thread_fence(__ATOMIC_RELEASE);
		__atomic_store_n(&f->fd, rc >= 0 ? fd : -1, __ATOMIC_RELAXED);
		__atomic_store_n(&f->device, rc >= 0 ? (uint64_t)st.st_dev : 0, __ATOMIC_RELAXED);
		__atomic_store_n(&f->inode, rc >= 0 ? (uint64_t)st.st_ino : 0, __ATOMIC_RELAXED);
		__atomic_store_n(&f->seq, f->seq + 1, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&self_files_lock);
	return rc;
}

void phyr_forget_self_files(void)
{
	for (int i = 0; i < 2; i++)
		self_files[i] = (struct self_file){ 0, -1, 0, 0 };
	pthread_mutex_init(&self_files_lock, NULL);
}
