#pragma once
#include <sys/types.h>

/// posix_spawn `path` in a new process group with default signal handling and an empty signal
/// mask; fds 0-2 are the given ones (-1 = /dev/null), every other fd is closed. Returns 0 or an errno.
int robit_spawn(const char *path, char *const argv[], char *const envp[], int in_fd, int out_fd, int err_fd, pid_t *pid);

/// pidfd_open(2); -1 with errno on failure.
int robit_pidfd_open(pid_t pid);

/// Installs async-signal-safe handlers for SIGINT, SIGTERM and SIGHUP that record the signal and
/// write one byte to `notify_fd`. Returns 0 or an errno.
int robit_install_interrupt_handlers(int notify_fd);

/// The first interrupting signal received, or 0.
int robit_interrupt_signal(void);

/// pipe2(2) (hidden from Swift behind _GNU_SOURCE).
int robit_pipe2(int fds[2], int flags);

/// write(2) that never raises SIGPIPE in the process: a reader that went away is EPIPE (-1, errno set).
ssize_t robit_write_nosigpipe(int fd, const void *buf, size_t len);
