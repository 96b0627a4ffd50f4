#define _GNU_SOURCE
#include "CRobitSys.h"
#include <errno.h>
#include <fcntl.h>
#include <linux/loop.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static int write_file(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -errno;
    ssize_t n = write(fd, text, strlen(text));
    int e = errno;
    close(fd);
    return n == (ssize_t)strlen(text) ? 0 : -(n < 0 ? e : EIO);
}

// A user namespace whose uid/gid `inside` is the initial namespace's `outside`, as an fd (or -errno).
// The namespace belongs to a child that waits until it has been opened; fork, not vfork: the child
// must run while this process writes its maps.
static int userns_mapping(uint32_t uid_in, uint32_t gid_in, uint32_t uid_out, uint32_t gid_out) {
    int ready[2], done[2];
    if (pipe2(ready, O_CLOEXEC) != 0) return -errno;
    if (pipe2(done, O_CLOEXEC) != 0) {
        int e = errno;
        close(ready[0]);
        close(ready[1]);
        return -e;
    }
    pid_t child = fork();
    if (child < 0) {
        int e = errno;
        close(ready[0]); close(ready[1]); close(done[0]); close(done[1]);
        return -e;
    }
    if (child == 0) {
        close(ready[0]);
        close(done[1]);
        char ok = unshare(CLONE_NEWUSER) == 0 ? 'y' : 'n';
        (void)!write(ready[1], &ok, 1);
        char c;
        (void)!read(done[0], &c, 1);
        _exit(0);
    }
    close(ready[1]);
    close(done[0]);
    char ok = 0;
    int result;
    if (read(ready[0], &ok, 1) != 1 || ok != 'y') {
        result = -EPERM;
    } else {
        char path[64], map[64];
        snprintf(map, sizeof map, "%u %u 1\n", uid_in, uid_out);
        snprintf(path, sizeof path, "/proc/%d/uid_map", (int)child);
        result = write_file(path, map);
        if (result == 0) {
            snprintf(path, sizeof path, "/proc/%d/setgroups", (int)child);
            write_file(path, "deny");
            snprintf(map, sizeof map, "%u %u 1\n", gid_in, gid_out);
            snprintf(path, sizeof path, "/proc/%d/gid_map", (int)child);
            result = write_file(path, map);
        }
        if (result == 0) {
            snprintf(path, sizeof path, "/proc/%d/ns/user", (int)child);
            result = open(path, O_RDONLY | O_CLOEXEC);
            if (result < 0) result = -errno;
        }
    }
    close(ready[0]);
    close(done[1]);
    while (waitpid(child, NULL, 0) < 0 && errno == EINTR) {}
    return result;
}

int robit_bind_mount(const char *source, const char *target, uint32_t uid_in, uint32_t gid_in, uint32_t uid_out, uint32_t gid_out,
                     int idmap, const char **step) {
    *step = "open_tree";
    int tree = (int)syscall(SYS_open_tree, AT_FDCWD, source, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_NO_AUTOMOUNT);
    if (tree < 0) return errno;
    struct mount_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
    int ns = -1;
    if (idmap) {
        *step = "user namespace";
        ns = userns_mapping(uid_in, gid_in, uid_out, gid_out);
        if (ns < 0) {
            close(tree);
            return -ns;
        }
        attr.attr_set |= MOUNT_ATTR_IDMAP;
        attr.userns_fd = (uint64_t)ns;
    }
    *step = "mount_setattr";
    int rc = (int)syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH, &attr, sizeof attr);
    int e = errno;
    if (ns >= 0) close(ns);
    if (rc != 0) {
        close(tree);
        return e;
    }
    *step = "move_mount";
    rc = (int)syscall(SYS_move_mount, tree, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH);
    e = errno;
    close(tree);
    return rc == 0 ? 0 : e;
}

int robit_loop_mount(const char *image, const char *target, const char *fstype, unsigned long flags, const char **step) {
    *step = "open the image";
    int file = open(image, O_RDWR | O_CLOEXEC);
    if (file < 0) return errno;
    *step = "/dev/loop-control";
    int control = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
    if (control < 0) {
        int e = errno;
        close(file);
        return e;
    }
    int result = EBUSY;
    // Another process can take the free device between the query and the configuration: retry.
    for (int attempt = 0; attempt < 64 && result == EBUSY; attempt++) {
        *step = "LOOP_CTL_GET_FREE";
        int n = ioctl(control, LOOP_CTL_GET_FREE);
        if (n < 0) { result = errno; break; }
        char dev[32];
        snprintf(dev, sizeof dev, "/dev/loop%d", n);
        *step = "open the loop device";
        int loop = open(dev, O_RDWR | O_CLOEXEC);
        if (loop < 0) { result = errno == ENOENT ? EBUSY : errno; continue; }
        struct loop_config config;
        memset(&config, 0, sizeof config);
        config.fd = (uint32_t)file;
        // Detached by the kernel when the last user (the mount) goes: nothing to clean up later.
        config.info.lo_flags = LO_FLAGS_AUTOCLEAR;
        snprintf((char *)config.info.lo_file_name, sizeof config.info.lo_file_name, "%s", image);
        *step = "LOOP_CONFIGURE";
        if (ioctl(loop, LOOP_CONFIGURE, &config) != 0) {
            result = errno;
            close(loop);
            continue;
        }
        *step = "mount";
        result = mount(dev, target, fstype, flags, NULL) == 0 ? 0 : errno;
        // With AUTOCLEAR, closing the last fd of an unmounted device detaches it.
        close(loop);
    }
    close(control);
    close(file);
    return result;
}

#include <sys/xattr.h>

int robit_overlay_opaque(const char *path) {
    char value[4];
    ssize_t n = lgetxattr(path, "trusted.overlay.opaque", value, sizeof value);
    return n >= 1 && value[0] == 'y';
}
