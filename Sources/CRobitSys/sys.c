#define _GNU_SOURCE
#include "CRobitSys.h"
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <sched.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int robit_spawn(const char *path, char *const argv[], char *const envp[], int in_fd, int out_fd, int err_fd, pid_t *pid) {
    return robit_spawn_passing(path, argv, envp, in_fd, out_fd, err_fd, -1, pid);
}

int robit_spawn_passing(const char *path, char *const argv[], char *const envp[], int in_fd, int out_fd, int err_fd, int pass_fd,
                        pid_t *pid) {
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
    if (!rc && pass_fd >= 0) rc = posix_spawn_file_actions_adddup2(&fa, pass_fd, 3);  // clears close-on-exec, also when pass_fd is 3
    if (!rc) rc = posix_spawn_file_actions_addclosefrom_np(&fa, pass_fd >= 0 ? 4 : 3);
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

// ---- spawning with a mount namespace of the child's own ----

struct spawn_job {
    const char *path;
    char *const *argv;
    char *const *envp;
    int fds[3];
    const char *hide_dir;
    int keep_fd;                // kept open through the close of fds >= 3 (close-on-exec), or -1
    volatile int err;           // set by the child when it fails before exec
    const char *volatile step;  // what failed
};

static int spawn_fail(struct spawn_job *j, const char *step) {
    j->err = errno ? errno : EINVAL;
    j->step = step;
    _exit(127);
}

/// The child, on a stack of its own and sharing the parent's memory until it execs (CLONE_VM |
/// CLONE_VFORK, as posix_spawn does): only system calls here, and failures are written to the job.
static int spawn_child(void *arg) {
    struct spawn_job *j = arg;
    // Every signal has its default action before the mask opens again (the parent blocked all of
    // them around clone, so none of robit's handlers can run here on the shared memory).
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP) continue;
        sigaction(sig, &dfl, NULL);  // glibc's internal signals are refused (EINVAL): they are reset by exec
    }
    if (setpgid(0, 0) != 0) return spawn_fail(j, "setpgid");
    for (int i = 0; i < 3; i++) {
        int fd = j->fds[i];
        if (fd < 0) {
            int n = open("/dev/null", i == 0 ? O_RDONLY : O_WRONLY);
            if (n < 0) return spawn_fail(j, "open /dev/null");
            if (n != i) {
                if (dup2(n, i) < 0) return spawn_fail(j, "dup2");
                close(n);
            }
        } else if (fd == i) {
            if (fcntl(i, F_SETFD, 0) != 0) return spawn_fail(j, "fcntl");
        } else if (dup2(fd, i) < 0) {
            return spawn_fail(j, "dup2");
        }
    }
    if (j->keep_fd >= 3) {
        if (j->keep_fd > 3) syscall(SYS_close_range, 3U, (unsigned)j->keep_fd - 1, 0U);
        syscall(SYS_close_range, (unsigned)j->keep_fd + 1, ~0U, 0U);
    } else if (syscall(SYS_close_range, 3U, ~0U, 0U) != 0) {
        for (int fd = 3; fd < 65536; fd++) close(fd);
    }
    if (unshare(CLONE_NEWNS) != 0) return spawn_fail(j, "enter a mount namespace of its own (unshare CLONE_NEWNS)");
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) return spawn_fail(j, "make its mounts private");
    if (mount("robit-hidden", j->hide_dir, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,mode=555") != 0)
        return spawn_fail(j, "mount an empty read-only tmpfs on the directory to hide");
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    execve(j->path, j->argv, j->envp);
    return spawn_fail(j, "exec");
}

#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define ROBIT_THREAD_SANITIZER 1
#endif
#endif
#if !defined(ROBIT_THREAD_SANITIZER) && defined(__SANITIZE_THREAD__)
#define ROBIT_THREAD_SANITIZER 1
#endif

#if ROBIT_THREAD_SANITIZER
/// ThreadSanitizer's clone interceptor cannot follow clone(CLONE_VM | CLONE_VFORK) (it aborts in
/// ForkAfter). Under TSan only (`scripts/test --sanitize thread`), the same child runs after fork():
/// the job lives in shared memory, and a close-on-exec pipe tells the parent when the child has
/// exec'd (end of file) or failed (it exits).
static int spawn_hiding_forked(const char *path, char *const argv[], char *const envp[], int in_fd, int out_fd, int err_fd,
                               const char *hide_dir, pid_t *pid, const char **step) {
    struct spawn_job *job = mmap(NULL, sizeof *job, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (job == MAP_FAILED) { *step = "allocate the job"; return errno; }
    int done[2];
    if (pipe2(done, O_CLOEXEC) != 0) { int e = errno; munmap(job, sizeof *job); *step = "pipe"; return e; }
    *job = (struct spawn_job){.path = path, .argv = argv, .envp = envp, .fds = {in_fd, out_fd, err_fd}, .hide_dir = hide_dir,
                              .keep_fd = done[1]};
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    pid_t child = fork();
    if (child == 0) {
        close(done[0]);
        _exit(spawn_child(job));
    }
    int saved = child < 0 ? errno : 0;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    close(done[1]);
    if (child > 0) {
        char b;
        while (read(done[0], &b, 1) < 0 && errno == EINTR) {}
    }
    close(done[0]);
    int err = job->err;
    const char *failed = job->step;
    munmap(job, sizeof *job);
    if (child < 0) { *step = "fork"; return saved; }
    if (err) {
        int status;
        while (waitpid(child, &status, 0) < 0 && errno == EINTR) {}
        *step = failed;
        return err;
    }
    *pid = child;
    return 0;
}
#endif

int robit_spawn_hiding(const char *path, char *const argv[], char *const envp[], int in_fd, int out_fd, int err_fd,
                       const char *hide_dir, pid_t *pid, const char **step) {
    *step = NULL;
    if (!hide_dir) return robit_spawn(path, argv, envp, in_fd, out_fd, err_fd, pid);
#if ROBIT_THREAD_SANITIZER
    return spawn_hiding_forked(path, argv, envp, in_fd, out_fd, err_fd, hide_dir, pid, step);
#endif
    struct spawn_job job = {.path = path, .argv = argv, .envp = envp, .fds = {in_fd, out_fd, err_fd}, .hide_dir = hide_dir, .keep_fd = -1};
    size_t size = 256 * 1024;
    void *stack = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (stack == MAP_FAILED) { *step = "allocate the child's stack"; return errno; }
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int saved = 0;
    pid_t child = clone(spawn_child, (char *)stack + size, CLONE_VM | CLONE_VFORK | SIGCHLD, &job);
    if (child < 0) saved = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    munmap(stack, size);
    if (child < 0) { *step = "clone"; return saved; }
    if (job.err) {
        // The child ended before exec: reap it and say what failed.
        int status;
        while (waitpid(child, &status, 0) < 0 && errno == EINTR) {}
        *step = job.step;
        return job.err;
    }
    *pid = child;
    return 0;
}

int robit_pidfd_open(pid_t pid) {
    return (int)syscall(SYS_pidfd_open, pid, 0);
}

int robit_pidfd_send_signal(int pidfd, int sig) {
    return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
}

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

int robit_pidfd_wait(int pidfd, int options, pid_t *pid) {
    siginfo_t info;
    memset(&info, 0, sizeof info);
    int r;
    do { r = waitid((idtype_t)P_PIDFD, (id_t)pidfd, &info, options); } while (r < 0 && errno == EINTR);
    if (r < 0) return errno;
    *pid = info.si_pid;
    return 0;
}

int robit_reap_if_ended(pid_t pid) {
    siginfo_t info;
    memset(&info, 0, sizeof info);
    int r;
    do { r = waitid(P_PID, (id_t)pid, &info, WEXITED | WNOHANG); } while (r < 0 && errno == EINTR);
    if (r < 0) return -errno;
    return info.si_pid == pid ? 1 : 0;
}

int robit_dup_cloexec(int fd) {
    return fcntl(fd, F_DUPFD_CLOEXEC, 3);
}

int robit_set_child_subreaper(void) {
    return prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0 ? 0 : errno;
}

int robit_is_child_subreaper(void) {
    int on = 0;
    return prctl(PR_GET_CHILD_SUBREAPER, &on, 0, 0, 0) == 0 && on;
}

// Written by the signal handler, read by any thread: a lock-free atomic (async-signal-safe).
static int interrupt_signal = 0;
static int interrupt_fd = -1;

static void on_interrupt(int sig) {
    int saved = errno;
    int none = 0;
    __atomic_compare_exchange_n(&interrupt_signal, &none, sig, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
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

int robit_interrupt_signal(void) { return __atomic_load_n(&interrupt_signal, __ATOMIC_SEQ_CST); }

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
