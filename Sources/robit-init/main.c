// robit-init: the process robit keeps as PID 1 in every sandbox, and the wrapper of every exec.
//
// It is bind-mounted read-only at /.robit/init and statically linked, so it works in any rootfs.
//
//   robit-init init                 PID 1: reap every orphan until SIGTERM/SIGINT/SIGKILL.
//   robit-init exec [--seccomp F] -- ARGV...
//                                   start ARGV in a new session, after loading the seccomp BPF
//                                   program in F (for runtimes that do not filter exec'd processes).
//   robit-init kill TAG [KEEP...]   SIGKILL every process tagged TAG (a timed-out call's whole tree)
//                                   and every process not tagged with one of KEEP (running commands).
//   robit-init kill --all           SIGKILL every process but PID 1 (pids limit exhausted by leftovers).
//   robit-init probe                print the process's security state, one key=value per line.
//   robit-init fs OP ARGS...        the agent's file tools, confined to /work (see fs.c).
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int run_fs(int argc, char **argv);

static void no_op(int sig) { (void)sig; }

static int run_init(void) {
    // Nothing inherited from the runtime stays open: a command must not reach a host file (the
    // runtime's log) through /proc/1/fd.
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null >= 0) {
        dup2(null, 0);
        dup2(null, 1);
        dup2(null, 2);
        if (null > 2) close(null);
    }
    for (int fd = 3; fd < 1024; fd++) close(fd);
    // As PID 1, a signal with the default disposition is dropped even when waited for: give the
    // ones that end the sandbox a handler, then take every signal synchronously.
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = no_op;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGCHLD, &sa, NULL);
    sigset_t all;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, NULL);
    for (;;) {
        siginfo_t info;
        int sig = sigwaitinfo(&all, &info);
        if (sig == SIGTERM || sig == SIGINT || sig == SIGHUP) return 0;
        // Reap every exited child: orphans of exec'd commands are reparented to us.
        while (waitpid(-1, NULL, WNOHANG) > 0) {}
    }
}

// Loads a BPF program exported by libseccomp. Fails closed: a command never runs unfiltered.
static int apply_seccomp(const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "robit: cannot open seccomp filter %s: %s\n", path, strerror(errno));
        return -1;
    }
    static struct sock_filter prog[1 << 15];
    size_t total = 0;
    for (;;) {
        ssize_t n = read(fd, (char *)prog + total, sizeof prog - total);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        total += (size_t)n;
    }
    close(fd);
    if (total == 0 || total % sizeof(struct sock_filter) != 0 || total >= sizeof prog) {
        fprintf(stderr, "robit: seccomp filter %s is malformed (%zu bytes)\n", path, total);
        return -1;
    }
    struct sock_fprog fprog = {(unsigned short)(total / sizeof(struct sock_filter)), prog};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fprog) != 0) {
        fprintf(stderr, "robit: cannot apply seccomp filter: %s\n", strerror(errno));
        return -1;
    }
    return 0;
}

static int run_exec(const char *seccomp, char **argv) {
    if (setsid() < 0 && errno != EPERM) {
        fprintf(stderr, "robit-init: setsid: %s\n", strerror(errno));
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (seccomp && apply_seccomp(seccomp) != 0) return 126;
    execvp(argv[0], argv);
    int e = errno;
    fprintf(stderr, "robit: cannot execute %s: %s\n", argv[0], strerror(e));
    return (e == ENOENT || e == ENOTDIR) ? 127 : 126;
}

// The value of ROBIT_EXEC in /proc/PID/environ, copied into `out`: 1 if present, 0 if absent,
// -1 if the process is gone or unreadable.
static int exec_tag(const char *pid, char *out, size_t outlen) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%s/environ", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    static char buf[1 << 16];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n < 0) return -1;
    buf[n] = 0;
    for (ssize_t i = 0; i < n;) {
        size_t len = strnlen(buf + i, (size_t)(n - i));
        if (len > 11 && memcmp(buf + i, "ROBIT_EXEC=", 11) == 0) {
            snprintf(out, outlen, "%.*s", (int)(len - 11), buf + i + 11);
            return 1;
        }
        i += (ssize_t)len + 1;
    }
    return 0;
}

// Kills the processes of command TAG and every process that belongs to no running command (no
// tag, or a tag not in KEEP), so a process cannot outlive its command by dropping ROBIT_EXEC. With
// TAG NULL every process but PID 1 and itself goes.
static int run_kill(const char *tag, char **keep, int nkeep) {
    pid_t self = getpid();
    // Forks in flight can slip past one pass: repeat until a pass finds nothing.
    for (int round = 0; round < 200; round++) {
        int found = 0;
        DIR *d = opendir("/proc");
        if (!d) {
            fprintf(stderr, "robit-init: /proc: %s\n", strerror(errno));
            return 1;
        }
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            char *end;
            long pid = strtol(e->d_name, &end, 10);
            if (*end != 0 || pid <= 1 || pid == self) continue;
            if (tag) {
                char t[256];
                int has = exec_tag(e->d_name, t, sizeof t);
                if (has < 0) continue;
                int kept = 0;
                if (has == 1 && strcmp(t, tag) != 0) {
                    for (int k = 0; k < nkeep; k++) {
                        if (strcmp(t, keep[k]) == 0) kept = 1;
                    }
                }
                if (kept) continue;
            }
            if (kill((pid_t)pid, SIGKILL) == 0) found++;
        }
        closedir(d);
        if (!found) return 0;
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return 1;
}

static int run_probe(void) {
    printf("uid=%d\ngid=%d\n", (int)getuid(), (int)getgid());
    printf("no_new_privs=%d\n", prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0));
    printf("seccomp=%d\n", prctl(PR_GET_SECCOMP, 0, 0, 0, 0));
    FILE *f = fopen("/proc/self/status", "r");
    if (f) {
        char line[256];
        while (fgets(line, sizeof line, f)) {
            if (strncmp(line, "CapEff:", 7) == 0 || strncmp(line, "CapPrm:", 7) == 0 ||
                strncmp(line, "CapBnd:", 7) == 0 || strncmp(line, "CapAmb:", 7) == 0) {
                char name[8] = {0};
                unsigned long long v = 0;
                if (sscanf(line, "%7[^:]: %llx", name, &v) == 2) printf("%s=%llx\n", name, v);
            }
        }
        fclose(f);
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "init") == 0) return run_init();
    if (argc >= 4 && strcmp(argv[1], "exec") == 0 && strcmp(argv[2], "--") == 0) return run_exec(NULL, argv + 3);
    if (argc >= 6 && strcmp(argv[1], "exec") == 0 && strcmp(argv[2], "--seccomp") == 0 && strcmp(argv[4], "--") == 0)
        return run_exec(argv[3], argv + 5);
    if (argc >= 3 && strcmp(argv[1], "kill") == 0) {
        if (strcmp(argv[2], "--all") == 0) return run_kill(NULL, NULL, 0);
        return run_kill(argv[2], argv + 3, argc - 3);
    }
    if (argc == 2 && strcmp(argv[1], "probe") == 0) return run_probe();
    if (argc >= 3 && strcmp(argv[1], "fs") == 0) return run_fs(argc - 2, argv + 2);
    fprintf(stderr, "usage: robit-init init | exec [--seccomp FILE] -- ARGV... | kill TAG [KEEP...] | kill --all | probe | fs OP ARGS...\n");
    return 2;
}

// SwiftPM links every executable through the Swift driver, which adds swiftrt.o and its references
// into the Swift runtime. robit-init is plain C and must stay small and static (gVisor pays for
// every page of a big binary on each exec): these no-op definitions satisfy those references so
// that no part of the Swift runtime is linked in.
void swift_addNewDSOImage(const void *header) { (void)header; }
int _swift_backtrace_isThunkFunction(const char *name) { (void)name; return 0; }
