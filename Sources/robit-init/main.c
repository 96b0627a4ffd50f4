// robit-init: the process robit keeps as PID 1 in every sandbox, and the wrapper of every exec.
//
// It is bind-mounted read-only at /.robit/init and statically linked, so it works in any rootfs.
//
//   robit-init init                 PID 1: reap every orphan until SIGTERM/SIGINT/SIGKILL.
//   robit-init exec [--seccomp F] -- ARGV...
//                                   start ARGV in a new session, after loading the seccomp BPF
//                                   program in F (for runtimes that do not filter exec'd processes).
//   robit-init kill TAG             SIGKILL every process tagged TAG (a timed-out call's whole tree).
//   robit-init kill --all           SIGKILL every process but PID 1 (pids limit exhausted by leftovers).
//   robit-init probe                print the process's security state, one key=value per line.
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

static void no_op(int sig) { (void)sig; }

static int run_init(void) {
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

// Returns 1 if /proc/PID/environ holds the entry "ROBIT_EXEC=TAG".
static int tagged(const char *pid, const char *needle, size_t nlen) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%s/environ", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    static char buf[1 << 16];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return 0;
    buf[n] = 0;
    for (ssize_t i = 0; i < n;) {
        size_t len = strnlen(buf + i, (size_t)(n - i));
        if (len == nlen && memcmp(buf + i, needle, nlen) == 0) return 1;
        i += (ssize_t)len + 1;
    }
    return 0;
}

// Kills the processes tagged TAG, or with TAG NULL every process but PID 1 and itself.
static int run_kill(const char *tag) {
    char needle[256];
    int nlen = tag ? snprintf(needle, sizeof needle, "ROBIT_EXEC=%s", tag) : 0;
    if (nlen < 0 || (size_t)nlen >= sizeof needle) return 2;
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
            if (tag && !tagged(e->d_name, needle, (size_t)nlen)) continue;
            pid_t pg = getpgid((pid_t)pid);
            if (pg > 1 && pg != getpgid(0)) kill(-pg, SIGKILL);
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
    if (argc == 3 && strcmp(argv[1], "kill") == 0) return run_kill(strcmp(argv[2], "--all") == 0 ? NULL : argv[2]);
    if (argc == 2 && strcmp(argv[1], "probe") == 0) return run_probe();
    fprintf(stderr, "usage: robit-init init | exec [--seccomp FILE] -- ARGV... | kill TAG|--all | probe\n");
    return 2;
}
