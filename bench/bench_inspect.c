/* SPDX-License-Identifier: MIT */
/*
 * bench_inspect - phyr-inspect on a big process: 30,000 mappings and an
 * io_uring of 16,384 registered buffers, against reading the kernel's own
 * text for the same (all of smaps and the ring's fdinfo), in one run.
 *
 *   bench_inspect PATH-TO-phyr-inspect
 */
#include "bench.h"

#include <liburing.h>
#include <sys/wait.h>

#define MAPPINGS 30000
#define BUFFERS 16384

static int child_ready[2], child_hold[2];

/* The inspected process: 30,000 VMAs (alternating protections keep
 * neighbours apart) and one ring holding 16,384 4 KiB buffers. */
static void target(void)
{
	char *area = mmap(NULL, MAPPINGS * PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (area == MAP_FAILED)
		die("mmap", errno);
	for (int i = 0; i < MAPPINGS; i += 2)
		if (mprotect(area + (size_t)i * PAGE, PAGE, PROT_READ | PROT_WRITE))
			die("mprotect", errno);
	char *mem = alloc(BUFFERS * PAGE, 0);
	struct iovec *iov = calloc(BUFFERS, sizeof *iov);
	for (int i = 0; i < BUFFERS; i++)
		iov[i] = (struct iovec){ mem + (size_t)i * PAGE, PAGE };
	struct io_uring ring;
	int rc = io_uring_queue_init(8, &ring, 0);
	if (rc || (rc = io_uring_register_buffers(&ring, iov, BUFFERS)))
		die("io_uring_register_buffers", rc);
	char fd = (char)ring.ring_fd;
	if (write(child_ready[1], &fd, 1) != 1)
		_exit(1);
	char c;
	while (read(child_hold[0], &c, 1) > 0)
		;
	_exit(0);
}

static double run_tool(const char *tool, pid_t pid)
{
	char pidtext[16];
	snprintf(pidtext, sizeof pidtext, "%d", (int)pid);
	double t = now();
	pid_t p = fork();
	if (p == 0) {
		int null = open("/dev/null", O_WRONLY);
		dup2(null, 1);
		execl(tool, tool, "--io-uring", "--json", pidtext, (char *)NULL);
		_exit(127);
	}
	int status;
	waitpid(p, &status, 0);
	t = now() - t;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		die("phyr-inspect", WIFEXITED(status) ? WEXITSTATUS(status) : EINTR);
	return t;
}

static double read_all(const char *path)
{
	static char buf[1 << 16];
	double t = now();
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		die(path, errno);
	while (read(fd, buf, sizeof buf) > 0)
		;
	close(fd);
	return now() - t;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: bench_inspect PATH-TO-phyr-inspect\n");
		return 2;
	}
	if (pipe(child_ready) || pipe(child_hold))
		die("pipe", errno);
	pid_t pid = fork();
	if (pid == 0) {
		close(child_hold[1]);
		target();
	}
	close(child_hold[0]);
	char fd;
	if (read(child_ready[0], &fd, 1) != 1)
		die("the target process did not start", EIO);
	char smaps[64], fdinfo[64];
	snprintf(smaps, sizeof smaps, "/proc/%d/smaps", (int)pid);
	snprintf(fdinfo, sizeof fdinfo, "/proc/%d/fdinfo/%d", (int)pid, fd);
	double tool[5], raw[5];
	for (int i = 0; i < 5; i++) {
		tool[i] = run_tool(argv[1], pid);
		raw[i] = read_all(smaps) + read_all(fdinfo);
	}
	char ratio[32];
	printf("libphyr %s inspect bench: medians; the ratio is against a baseline run in this same process\n\n",
	       phyr_version());
	printf("| %-52s | %10s | %-40s | %10s | %-13s | %-12s |\n", "phyr-inspect", "time", "baseline", "time", "ratio",
	       "target");
	printf("|------------------------------------------------------|------------|------------------------------------------|------------|---------------|--------------|\n");
	printf("| %-52s | %7.1f ms | %-40s | %7.1f ms | %-13s | %-12s |\n",
	       "--io-uring --json, 30,000 mappings, 16,384 buffers", median(tool, 5) * 1e3,
	       "reading its smaps and the ring's fdinfo", median(raw, 5) * 1e3,
	       ratio_text(median(tool, 5), median(raw, 5), ratio, sizeof ratio), "< 1 s");
	close(child_hold[1]);
	waitpid(pid, NULL, 0);
	return 0;
}
