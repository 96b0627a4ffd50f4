// robit-init: the process robit keeps as PID 1 in every sandbox, and the wrapper of every exec.
//
// It is bind-mounted read-only at /.robit/init and statically linked, so it works in any rootfs.
//
//   robit-init init                 PID 1: reap every orphan until SIGTERM/SIGINT/SIGKILL.
//   robit-init exec [--tag T] [--seccomp F] [--keep-background] -- ARGV...
//                                   run ARGV in a new session, after loading the seccomp BPF program
//                                   in F (for runtimes that do not filter exec'd processes); when it
//                                   ends, kill every process it left (unless --keep-background).
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

// What /proc/PID/stat says of a process: its parent, whether it is a zombie (or dead) and whether
// it is stopped. 0 if read.
static int stat_of(const char *pid, pid_t *ppid, int *dead, int *stopped) {
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%s/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return -1;
    buf[n] = 0;
    // The command name may hold spaces and parentheses: the state follows the last ')'.
    char *paren = strrchr(buf, ')');
    char state;
    int parent;
    if (!paren || sscanf(paren + 1, " %c %d", &state, &parent) != 2) return -1;
    *ppid = (pid_t)parent;
    *dead = state == 'Z' || state == 'X' || state == 'x';
    *stopped = state == 'T' || state == 't';
    return 0;
}

// The TAG of a running command's robit-init (`exec --tag TAG ...`) from /proc/PID/cmdline.
static int wrapper_tag(const char *pid, char *out, size_t outlen) {
    char path[64];
    static char buf[4096];
    snprintf(path, sizeof path, "/proc/%s/cmdline", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return 0;
    buf[n] = 0;
    for (ssize_t i = 0; i < n;) {
        size_t len = strnlen(buf + i, (size_t)(n - i));
        if (strcmp(buf + i, "--") == 0) break;
        if (strcmp(buf + i, "--tag") == 0 && i + (ssize_t)len + 1 < n) {
            snprintf(out, outlen, "%s", buf + i + len + 1);
            return 1;
        }
        i += (ssize_t)len + 1;
    }
    return 0;
}

struct proc_entry {
    pid_t pid, ppid;
    int stopped;
};

static int compare_pids(const void *a, const void *b) {
    pid_t x = ((const struct proc_entry *)a)->pid, y = ((const struct proc_entry *)b)->pid;
    return (x > y) - (x < y);
}

// One pass over the sandbox's processes after the command of `self` ended; returns how many it
// killed. A process started by the runtime's exec (a running command's robit-init) has parent 0,
// which no process started inside can get: that makes "running command" unforgeable. Killed:
// every descendant of `self`, and every orphan (its ancestors end at PID 1) that does not carry the
// ROBIT_EXEC tag of a command still running (no tag, a cleared environment, a made-up tag, the tag of
// a command that ended). Kept: PID 1, running commands and their descendants, orphans of running
// commands (until those end). With SIGSTOP, processes already stopped are not counted.
static int sweep_leftovers(pid_t self, int sig) {
    static struct proc_entry *procs;
    static size_t cap;
    size_t count = 0;
    static char running[64][64];
    int nrunning = 0;
    DIR *d = opendir("/proc");
    if (!d) return 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (*end != 0 || pid <= 1 || pid == self) continue;
        pid_t ppid;
        int dead, stopped;
        if (stat_of(e->d_name, &ppid, &dead, &stopped) != 0 || dead) continue;
        if (ppid == 0) {
            if (nrunning < 64 && wrapper_tag(e->d_name, running[nrunning], sizeof running[0])) nrunning++;
        }
        if (count == cap) {
            size_t grown = cap ? cap * 2 : 256;
            struct proc_entry *p = realloc(procs, grown * sizeof *p);
            if (!p) break;
            procs = p;
            cap = grown;
        }
        procs[count++] = (struct proc_entry){(pid_t)pid, ppid, stopped};
    }
    closedir(d);
    qsort(procs, count, sizeof *procs, compare_pids);
    int killed = 0;
    for (size_t i = 0; i < count; i++) {
        if (procs[i].ppid == 0) continue;
        // Follow the parents: to self (ours), to another process of parent 0 (a running command's),
        // or to PID 1 / a parent that just ended (an orphan).
        pid_t up = procs[i].ppid;
        int verdict = 0;  // 1 ours, 2 a running command's, 3 orphan
        for (int depth = 0; depth < 4096 && !verdict; depth++) {
            if (up == self) { verdict = 1; break; }
            if (up <= 1) { verdict = 3; break; }
            struct proc_entry key = {up, 0};
            struct proc_entry *parent = bsearch(&key, procs, count, sizeof *procs, compare_pids);
            if (!parent) { verdict = 3; break; }
            if (parent->ppid == 0) { verdict = 2; break; }
            up = parent->ppid;
        }
        if (verdict == 2 || verdict == 0) continue;
        if (verdict == 3) {
            char name[16], t[256];
            snprintf(name, sizeof name, "%d", (int)procs[i].pid);
            int kept = 0;
            if (exec_tag(name, t, sizeof t) == 1) {
                for (int k = 0; k < nrunning; k++) {
                    if (strcmp(t, running[k]) == 0) kept = 1;
                }
            }
            if (kept) continue;
        }
        if (sig == SIGSTOP && procs[i].stopped) continue;
        if (kill(procs[i].pid, sig) == 0) killed++;
    }
    return killed;
}

// Runs ARGV as a child in a new session and returns its status (128+N if signal N ended it). Unless
// `keep`, when the command ends every process it left is killed (sweep_leftovers) before this
// process exits, however it detached (setsid, double fork, a cleared or forged environment): a
// command's background processes end with it, and the runtime's exec returns only then. Where the
// kernel supports it (not gVisor) this process is also the command's child subreaper, so the
// command's orphans stay below it. It ignores every signal it can and is not dumpable, so the
// command can neither end it politely nor write to its memory; a command that SIGKILLs or SIGSTOPs
// it is cleaned up by robit from outside (exit 137, or the timeout; see docs/sandbox.md).
static int run_exec(const char *seccomp, int keep, char **argv) {
    if (seccomp && apply_seccomp(seccomp) != 0) return 126;
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    if (keep) {
        if (setsid() < 0 && errno != EPERM) fprintf(stderr, "robit-init: setsid: %s\n", strerror(errno));
        sigprocmask(SIG_SETMASK, &none, NULL);
        execvp(argv[0], argv);
        int e = errno;
        fprintf(stderr, "robit: cannot execute %s: %s\n", argv[0], strerror(e));
        return (e == ENOENT || e == ENOTDIR) ? 127 : 126;
    }
    prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    sigprocmask(SIG_SETMASK, &all, NULL);
    pid_t child = fork();
    if (child < 0) {
        fprintf(stderr, "robit: cannot start %s: %s\n", argv[0], strerror(errno));
        return 126;
    }
    if (child == 0) {
        if (setsid() < 0) fprintf(stderr, "robit-init: setsid: %s\n", strerror(errno));
        sigprocmask(SIG_SETMASK, &none, NULL);
        execvp(argv[0], argv);
        int e = errno;
        fprintf(stderr, "robit: cannot execute %s: %s\n", argv[0], strerror(e));
        _exit((e == ENOENT || e == ENOTDIR) ? 127 : 126);
    }
    int code = 1;
    for (;;) {
        int status;
        pid_t r = waitpid(-1, &status, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) break;
        if (r == child) {
            code = WIFEXITED(status) ? WEXITSTATUS(status) : WIFSIGNALED(status) ? 128 + WTERMSIG(status) : 1;
            break;
        }
    }
    // Stopped first, then killed: a stopped process cannot fork, while each one killed frees a pid
    // that a fork bomb's survivors take at once. Passes until one finds nothing: what a pass
    // stops or kills may have forked before the signal landed.
    pid_t self = getpid();
    for (int round = 0; round < 2000; round++) {
        if (sweep_leftovers(self, SIGSTOP) == 0) break;
    }
    for (int round = 0; round < 2000; round++) {
        int killed = sweep_leftovers(self, SIGKILL);
        while (waitpid(-1, NULL, WNOHANG) > 0) {}
        if (killed == 0) break;
        struct timespec ts = {0, 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    while (waitpid(-1, NULL, WNOHANG) > 0) {}
    return code;
}

// One pass of run_kill: sends `sig` to the processes of command TAG and of no running command;
// returns how many it signalled. With SIGSTOP, processes already stopped are not counted.
static int kill_pass(pid_t self, const char *tag, char **keep, int nkeep, int sig) {
    int found = 0;
    DIR *d = opendir("/proc");
    if (!d) {
        fprintf(stderr, "robit-init: /proc: %s\n", strerror(errno));
        return -1;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (*end != 0 || pid <= 1 || pid == self) continue;
        pid_t ppid;
        int dead, stopped;
        if (stat_of(e->d_name, &ppid, &dead, &stopped) != 0 || dead) continue;
        if (sig == SIGSTOP && stopped) continue;
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
        if (kill((pid_t)pid, sig) == 0) found++;
    }
    closedir(d);
    return found;
}

// Kills the processes of command TAG and every process that belongs to no running command (no
// tag, or a tag not in KEEP), so a process cannot outlive its command by dropping ROBIT_EXEC. With
// TAG NULL every process but PID 1 and itself goes. They are stopped first and killed once none
// runs: a stopped process cannot fork, while each one killed frees a pid that a fork bomb's
// survivors would take at once (a race this process, one among many, loses under gVisor).
static int run_kill(const char *tag, char **keep, int nkeep) {
    pid_t self = getpid();
    struct timespec pause = {0, 1000 * 1000};
    for (int round = 0; round < 200; round++) {
        int stopped = kill_pass(self, tag, keep, nkeep, SIGSTOP);
        if (stopped < 0) return 1;
        if (stopped == 0) break;
        nanosleep(&pause, NULL);
    }
    // Forks in flight can slip past one pass: repeat until a pass finds nothing.
    for (int round = 0; round < 200; round++) {
        int found = kill_pass(self, tag, keep, nkeep, SIGKILL);
        if (found < 0) return 1;
        if (!found) return 0;
        nanosleep(&pause, NULL);
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
    if (argc >= 2 && strcmp(argv[1], "exec") == 0) {
        const char *seccomp = NULL;
        int keep = 0, i = 2;
        for (; i < argc && strcmp(argv[i], "--") != 0; i++) {
            if (strcmp(argv[i], "--seccomp") == 0 && i + 1 < argc) seccomp = argv[++i];
            else if (strcmp(argv[i], "--tag") == 0 && i + 1 < argc) i++;
            else if (strcmp(argv[i], "--keep-background") == 0) keep = 1;
            else break;
        }
        if (i + 1 < argc && strcmp(argv[i], "--") == 0) return run_exec(seccomp, keep, argv + i + 1);
    }
    if (argc >= 3 && strcmp(argv[1], "kill") == 0) {
        if (strcmp(argv[2], "--all") == 0) return run_kill(NULL, NULL, 0);
        return run_kill(argv[2], argv + 3, argc - 3);
    }
    if (argc == 2 && strcmp(argv[1], "probe") == 0) return run_probe();
    if (argc >= 3 && strcmp(argv[1], "fs") == 0) return run_fs(argc - 2, argv + 2);
    fprintf(stderr, "usage: robit-init init | exec [--tag TAG] [--seccomp FILE] [--keep-background] -- ARGV... | kill TAG [KEEP...] | kill --all | probe | fs OP ARGS...\n");
    return 2;
}

// SwiftPM links every executable through the Swift driver, which adds swiftrt.o and its references
// into the Swift runtime. robit-init is plain C and must stay small and static (gVisor pays for
// every page of a big binary on each exec): these no-op definitions satisfy those references so
// that no part of the Swift runtime is linked in.
void swift_addNewDSOImage(const void *header) { (void)header; }
int _swift_backtrace_isThunkFunction(const char *name) { (void)name; return 0; }
