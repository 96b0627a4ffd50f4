#pragma once
#include <sys/types.h>

/// posix_spawn `path` in a new process group with default signal handling and an empty signal
/// mask; fds 0-2 are the given ones (-1 = /dev/null), every other fd is closed. Returns 0 or an errno.
int robit_spawn(const char *path, char *const argv[], char *const envp[], int in_fd, int out_fd, int err_fd, pid_t *pid);
/// robit_spawn, with `pass_fd` (when >= 0) open in the child as its fd 3 (a lock the child holds too).
int robit_spawn_passing(const char *path, char *const argv[], char *const envp[], int in_fd, int out_fd, int err_fd, int pass_fd,
                        pid_t *pid);

/// robit_spawn, with `hide_dir` (NULL: exactly robit_spawn) covered in the child: it is cloned
/// (vfork style, as posix_spawn does), enters a mount namespace of its own with private propagation
/// (the host's mounts are untouched), and mounts an empty read-only tmpfs on `hide_dir` before exec.
/// If any of that fails the child exits before exec and is reaped, and the errno is returned with
/// `*step` naming what failed.
int robit_spawn_hiding(const char *path, char *const argv[], char *const envp[], int in_fd, int out_fd, int err_fd,
                       const char *hide_dir, pid_t *pid, const char **step);

/// pidfd_open(2); -1 with errno on failure.
int robit_pidfd_open(pid_t pid);

/// pidfd_send_signal(2); 0, or -1 with errno.
int robit_pidfd_send_signal(int pidfd, int sig);

/// waitid(P_PIDFD, pidfd, ..., options): 0 with `*pid` the process's pid when it changed state (0 when
/// WNOHANG found nothing), or an errno (ECHILD: it is not this process's child, or was reaped).
int robit_pidfd_wait(int pidfd, int options, pid_t *pid);

/// waitid(P_PID, pid, ..., WEXITED | WNOHANG): 1 when `pid` had ended and is now reaped, 0 when it
/// runs, or an errno as a negative number (-ECHILD: not this process's child).
int robit_reap_if_ended(pid_t pid);

/// fcntl(F_DUPFD_CLOEXEC): a copy of `fd` that is closed on exec; -1 with errno on failure.
int robit_dup_cloexec(int fd);

/// PR_SET_CHILD_SUBREAPER: orphaned descendants become this process's children. 0 or an errno.
int robit_set_child_subreaper(void);

/// 1 when this process is a child subreaper, 0 when not.
int robit_is_child_subreaper(void);

/// Installs async-signal-safe handlers for SIGINT, SIGTERM and SIGHUP that record the signal and
/// write one byte to `notify_fd`. Returns 0 or an errno.
int robit_install_interrupt_handlers(int notify_fd);

/// The first interrupting signal received, or 0.
int robit_interrupt_signal(void);

/// pipe2(2) (hidden from Swift behind _GNU_SOURCE).
int robit_pipe2(int fds[2], int flags);

/// write(2) that never raises SIGPIPE in the process: a reader that went away is EPIPE (-1, errno set).
ssize_t robit_write_nosigpipe(int fd, const void *buf, size_t len);

/// Sets glibc malloc up for a long-lived process with a few busy threads: at most `arenas` arenas, and
/// blocks of `mmap_threshold` bytes or more mapped on their own and returned at free, so that neither
/// per-thread arenas nor big transient buffers keep memory the process no longer uses.
void robit_tune_malloc(int arenas, size_t mmap_threshold);

/// Returns the free memory of every malloc arena to the kernel (malloc_trim(0)).
void robit_trim_malloc(void);

#include <stdint.h>

/// Creates a network namespace bound at `ns_path` (its directory made a shared mount, as iproute2
/// does) and, over rtnetlink, a veth pair `host_if` (host) / `eth0` (in the namespace), `host_addr`
/// and `sandbox_addr` (IPv4, network byte order) with `prefix` on each end, loopback and both ends
/// up, and a default route via `host_addr` in the namespace. No process is started. The host end's
/// IPv6 is disabled before it goes up. Returns 0, or an errno with `*step` naming what failed
/// (a static string). Whatever was made before a failure is left for the caller's teardown.
int robit_net_create(const char *ns_path, const char *host_if, uint32_t host_addr, uint32_t sandbox_addr, int prefix, const char **step);

/// Deletes link `name` of the calling thread's namespace (a veth takes its peer with it).
/// 0, ENODEV when there is no such link, or an errno.
int robit_net_delete_link(const char *name);

/// Sets link `name` of the calling thread's namespace down: a veth whose end is down passes nothing.
/// 0, ENODEV when there is no such link, or an errno.
int robit_net_set_link_down(const char *name);

/// Detaches the namespace bind mount `ns_path` and removes the file. 0, ENOENT when there is none, or an errno.
int robit_net_remove_namespace(const char *ns_path);


/// Runs nft `commands` through libnftables (loaded with dlopen on first use; calls are serialized).
/// With `json`, the output is JSON. Returns 0 (ok), 1 (nft failed; `*error` holds its message),
/// or -1 (libnftables.so.1 cannot be loaded; `*error` says why). `*output` and `*error` are
/// malloc'd (or NULL) and belong to the caller.
int robit_nft_run(const char *commands, int json, char **output, char **error);

/// Bind-mounts `source` (not recursively) on `target`, nosuid and nodev; with `idmap`, through an
/// idmapped mount on which files owned by uid_in/gid_in appear owned by uid_out/gid_out (others
/// appear as the overflow id). 0 or an errno, with `*step` naming what failed.
int robit_bind_mount(const char *source, const char *target, uint32_t uid_in, uint32_t gid_in, uint32_t uid_out, uint32_t gid_out,
                     int idmap, const char **step);

/// Attaches `image` to a free loop device (detached automatically when unmounted) and mounts it on
/// `target` as `fstype` with `flags`. 0 or an errno, with `*step` naming what failed.
int robit_loop_mount(const char *image, const char *target, const char *fstype, unsigned long flags, const char **step);

/// 1 if the overlayfs upper-layer directory `path` is opaque (it replaces the lower layer's), else 0.
int robit_overlay_opaque(const char *path);
