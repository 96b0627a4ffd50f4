#define _GNU_SOURCE
#include "CRobitSys.h"
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

int robit_spawn(const char *path, char *const argv[], char *const envp[], int in_fd, int out_fd, int err_fd, pid_t *pid) {
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    int rc = posix_spawn_file_actions_init(&fa);
    if (rc) return rc;
    rc = posix_spawnattr_init(&attr);
    if (rc) { posix_spawn_file_actions_destroy(&fa); return rc; }
    int fds[3] = {in_fd, out_fd, err_fd};
    for (int i = 0; i < 3 && !rc; i++) {
        if (fds[i] < 0) rc = posix_spawn_file_actions_addopen(&fa, i, "/dev/null", i == 0 ? O_RDONLY : O_WRONLY, 0);
        else rc = posix_spawn_file_actions_adddup2(&fa, fds[i], i);
    }
    if (!rc) rc = posix_spawn_file_actions_addclosefrom_np(&fa, 3);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    sigdelset(&all, SIGKILL);
    sigdelset(&all, SIGSTOP);
    if (!rc) rc = posix_spawnattr_setsigmask(&attr, &none);
    if (!rc) rc = posix_spawnattr_setsigdefault(&attr, &all);
    if (!rc) rc = posix_spawnattr_setpgroup(&attr, 0);
    if (!rc) rc = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    if (!rc) rc = posix_spawn(pid, path, &fa, &attr, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    return rc;
}

int robit_pidfd_open(pid_t pid) {
    return (int)syscall(SYS_pidfd_open, pid, 0);
}

static volatile sig_atomic_t interrupt_signal = 0;
static int interrupt_fd = -1;

static void on_interrupt(int sig) {
    int saved = errno;
    if (!interrupt_signal) interrupt_signal = sig;
    if (interrupt_fd >= 0) {
        char b = (char)sig;
        ssize_t r = write(interrupt_fd, &b, 1);
        (void)r;
    }
    errno = saved;
}

int robit_install_interrupt_handlers(int notify_fd) {
    interrupt_fd = notify_fd;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_interrupt;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    int sigs[3] = {SIGINT, SIGTERM, SIGHUP};
    for (int i = 0; i < 3; i++) {
        if (sigaction(sigs[i], &sa, NULL) != 0) return errno;
    }
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

int robit_interrupt_signal(void) { return interrupt_signal; }

int robit_pipe2(int fds[2], int flags) { return pipe2(fds, flags); }

ssize_t robit_write_nosigpipe(int fd, const void *buf, size_t len) {
    sigset_t pipe_only, old;
    sigemptyset(&pipe_only);
    sigaddset(&pipe_only, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_only, &old);
    ssize_t n = write(fd, buf, len);
    int saved = errno;
    if (n < 0 && saved == EPIPE) {
        // Consume the SIGPIPE this write raised for this thread, unless one was already pending.
        struct timespec zero = {0, 0};
        sigset_t pending;
        sigpending(&pending);
        if (sigismember(&pending, SIGPIPE)) sigtimedwait(&pipe_only, NULL, &zero);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = saved;
    return n;
}
