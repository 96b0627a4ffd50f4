#define _GNU_SOURCE
#include "CRobitSys.h"
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_link.h>
#include <linux/if_packet.h>
#include <arpa/inet.h>
#include <linux/neighbour.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

// ---- rtnetlink requests ----

struct nlreq {
    struct nlmsghdr *h;
    union { char buf[2048]; struct nlmsghdr align; } u;
};

static void nl_begin(struct nlreq *r, int type, int flags, const void *body, size_t len) {
    memset(r->u.buf, 0, sizeof r->u.buf);
    r->h = (struct nlmsghdr *)r->u.buf;
    r->h->nlmsg_type = (unsigned short)type;
    r->h->nlmsg_flags = (unsigned short)(NLM_F_REQUEST | NLM_F_ACK | flags);
    r->h->nlmsg_len = NLMSG_LENGTH(len);
    memcpy(NLMSG_DATA(r->h), body, len);
}

static struct rtattr *nl_put(struct nlreq *r, int type, const void *data, size_t len) {
    struct rtattr *a = (struct rtattr *)(r->u.buf + NLMSG_ALIGN(r->h->nlmsg_len));
    a->rta_type = (unsigned short)type;
    a->rta_len = (unsigned short)RTA_LENGTH(len);
    if (len) memcpy(RTA_DATA(a), data, len);
    r->h->nlmsg_len = NLMSG_ALIGN(r->h->nlmsg_len) + RTA_ALIGN(a->rta_len);
    return a;
}

static void nl_raw(struct nlreq *r, const void *data, size_t len) {
    memcpy(r->u.buf + NLMSG_ALIGN(r->h->nlmsg_len), data, len);
    r->h->nlmsg_len = NLMSG_ALIGN(r->h->nlmsg_len) + (unsigned)NLMSG_ALIGN(len);
}

static void nl_end(struct nlreq *r, struct rtattr *nest) {
    nest->rta_len = (unsigned short)(r->u.buf + r->h->nlmsg_len - (char *)nest);
}

static int nl_open(void) {
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (fd < 0) return -1;
    struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

/// Sends the request and reads until its ack. With `index`, the ifindex of an RTM_NEWLINK reply is stored.
static int nl_talk(int fd, struct nlreq *r, int *index) {
    static __thread unsigned seq = 0;
    r->h->nlmsg_seq = ++seq;
    struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
    if (sendto(fd, r->u.buf, r->h->nlmsg_len, 0, (struct sockaddr *)&kernel, sizeof kernel) < 0) return errno;
    union { char buf[32768]; struct nlmsghdr align; } in;
    for (;;) {
        ssize_t n = recv(fd, in.buf, sizeof in.buf, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        for (struct nlmsghdr *h = (struct nlmsghdr *)in.buf; NLMSG_OK(h, (unsigned)n); h = NLMSG_NEXT(h, n)) {
            if (h->nlmsg_seq != r->h->nlmsg_seq) continue;
            if (h->nlmsg_type == RTM_NEWLINK && index) {
                *index = ((struct ifinfomsg *)NLMSG_DATA(h))->ifi_index;
            } else if (h->nlmsg_type == NLMSG_ERROR) {
                int e = -((struct nlmsgerr *)NLMSG_DATA(h))->error;
                if (e == 0 && index && *index == 0) return ENODEV;
                return e;
            } else if (h->nlmsg_type == NLMSG_DONE) {
                return 0;
            }
        }
    }
}

static int link_index(int fd, const char *name, int *index) {
    struct nlreq r;
    struct ifinfomsg ifi = {.ifi_family = AF_UNSPEC};
    nl_begin(&r, RTM_GETLINK, 0, &ifi, sizeof ifi);
    nl_put(&r, IFLA_IFNAME, name, strlen(name) + 1);
    *index = 0;
    return nl_talk(fd, &r, index);
}

static int link_up(int fd, int index) {
    struct nlreq r;
    struct ifinfomsg ifi = {.ifi_family = AF_UNSPEC, .ifi_index = index, .ifi_flags = IFF_UP, .ifi_change = IFF_UP};
    nl_begin(&r, RTM_NEWLINK, 0, &ifi, sizeof ifi);
    return nl_talk(fd, &r, NULL);
}

static int add_address(int fd, int index, uint32_t addr, int prefix) {
    struct nlreq r;
    struct ifaddrmsg ifa = {.ifa_family = AF_INET, .ifa_prefixlen = (unsigned char)prefix, .ifa_scope = RT_SCOPE_UNIVERSE,
                            .ifa_index = (unsigned)index};
    nl_begin(&r, RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, &ifa, sizeof ifa);
    nl_put(&r, IFA_LOCAL, &addr, 4);
    nl_put(&r, IFA_ADDRESS, &addr, 4);
    return nl_talk(fd, &r, NULL);
}

static int add_default_route(int fd, int index, uint32_t gateway) {
    struct nlreq r;
    struct rtmsg rt = {.rtm_family = AF_INET, .rtm_table = RT_TABLE_MAIN, .rtm_protocol = RTPROT_BOOT,
                       .rtm_scope = RT_SCOPE_UNIVERSE, .rtm_type = RTN_UNICAST};
    nl_begin(&r, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, &rt, sizeof rt);
    nl_put(&r, RTA_GATEWAY, &gateway, 4);
    uint32_t oif = (uint32_t)index;
    nl_put(&r, RTA_OIF, &oif, 4);
    return nl_talk(fd, &r, NULL);
}

static int add_veth(int fd, const char *host_if, const char *peer, int peer_ns_fd) {
    struct nlreq r;
    struct ifinfomsg ifi = {.ifi_family = AF_UNSPEC};
    nl_begin(&r, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, &ifi, sizeof ifi);
    nl_put(&r, IFLA_IFNAME, host_if, strlen(host_if) + 1);
    struct rtattr *info = nl_put(&r, IFLA_LINKINFO, NULL, 0);
    nl_put(&r, IFLA_INFO_KIND, "veth", 5);
    struct rtattr *data = nl_put(&r, IFLA_INFO_DATA, NULL, 0);
    struct rtattr *peer_info = nl_put(&r, VETH_INFO_PEER, NULL, 0);
    struct ifinfomsg peer_ifi = {.ifi_family = AF_UNSPEC};
    nl_raw(&r, &peer_ifi, sizeof peer_ifi);
    nl_put(&r, IFLA_IFNAME, peer, strlen(peer) + 1);
    uint32_t nsfd = (uint32_t)peer_ns_fd;
    nl_put(&r, IFLA_NET_NS_FD, &nsfd, 4);
    nl_end(&r, peer_info);
    nl_end(&r, data);
    nl_end(&r, info);
    return nl_talk(fd, &r, NULL);
}

int robit_net_delete_link(const char *name) {
    int fd = nl_open();
    if (fd < 0) return errno;
    struct nlreq r;
    struct ifinfomsg ifi = {.ifi_family = AF_UNSPEC};
    nl_begin(&r, RTM_DELLINK, 0, &ifi, sizeof ifi);
    nl_put(&r, IFLA_IFNAME, name, strlen(name) + 1);
    int rc = nl_talk(fd, &r, NULL);
    close(fd);
    return rc;
}

int robit_net_set_link_down(const char *name) {
    int fd = nl_open();
    if (fd < 0) return errno;
    struct nlreq r;
    struct ifinfomsg ifi = {.ifi_family = AF_UNSPEC, .ifi_change = IFF_UP};
    nl_begin(&r, RTM_NEWLINK, 0, &ifi, sizeof ifi);
    nl_put(&r, IFLA_IFNAME, name, strlen(name) + 1);
    int rc = nl_talk(fd, &r, NULL);
    close(fd);
    return rc;
}

// ---- the namespace ----

struct ns_job {
    const char *path;
    int sock;   // NETLINK_ROUTE socket in the new namespace
    int nsfd;   // the new namespace
    int err;
    const char *step;
};

/// On a thread of its own: only this thread enters the new namespace, and it ends there.
static void *ns_thread(void *arg) {
    struct ns_job *j = arg;
    if (unshare(CLONE_NEWNET) != 0) { j->err = errno; j->step = "unshare(CLONE_NEWNET)"; return NULL; }
    if (mount("/proc/thread-self/ns/net", j->path, "none", MS_BIND, NULL) != 0) {
        j->err = errno; j->step = "bind-mount the namespace"; return NULL;
    }
    j->nsfd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (j->nsfd < 0) { j->err = errno; j->step = "open the namespace"; return NULL; }
    j->sock = nl_open();
    if (j->sock < 0) { j->err = errno; j->step = "open a netlink socket in the namespace"; return NULL; }
    return NULL;
}

static int shared_netns_dir(const char *dir) {
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) return errno;
    if (mount("", dir, "none", MS_SHARED | MS_REC, NULL) == 0) return 0;
    if (errno != EINVAL) return errno;
    if (mount(dir, dir, "none", MS_BIND | MS_REC, NULL) != 0) return errno;
    if (mount("", dir, "none", MS_SHARED | MS_REC, NULL) != 0) return errno;
    return 0;
}

int robit_net_create(const char *ns_path, const char *host_if, uint32_t host_addr, uint32_t sandbox_addr, int prefix, const char **step) {
    char dir[256];
    size_t len = strlen(ns_path);
    const char *slash = strrchr(ns_path, '/');
    if (!slash || slash == ns_path || len >= sizeof dir || strlen(host_if) >= IFNAMSIZ) { *step = "check the names"; return EINVAL; }
    memcpy(dir, ns_path, (size_t)(slash - ns_path));
    dir[slash - ns_path] = 0;
    int rc = shared_netns_dir(dir);
    if (rc) { *step = "make the namespace directory a shared mount"; return rc; }
    int file = open(ns_path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0);
    if (file < 0) { *step = "create the namespace file"; return errno; }
    close(file);

    struct ns_job job = {.path = ns_path, .sock = -1, .nsfd = -1};
    pthread_t thread;
    rc = pthread_create(&thread, NULL, ns_thread, &job);
    if (rc) { *step = "start the namespace thread"; return rc; }
    pthread_join(thread, NULL);
    int host = -1;
    if (job.err) { rc = job.err; *step = job.step; goto out; }

    host = nl_open();
    if (host < 0) { rc = errno; *step = "open a netlink socket"; goto out; }
    rc = add_veth(host, host_if, "eth0", job.nsfd);
    if (rc) { *step = "create the veth pair"; goto out; }
    int host_index = 0, peer_index = 0;
    rc = link_index(host, host_if, &host_index);
    if (rc) { *step = "find the host end of the veth pair"; goto out; }
    // No IPv6 on the host's end: nothing of the host answers the sandbox there (absent without IPv6).
    char sysctl[96];
    snprintf(sysctl, sizeof sysctl, "/proc/sys/net/ipv6/conf/%s/disable_ipv6", host_if);
    int s = open(sysctl, O_WRONLY | O_CLOEXEC);
    if (s >= 0) {
        ssize_t w = write(s, "1", 1);
        (void)w;
        close(s);
    }
    rc = add_address(host, host_index, host_addr, prefix);
    if (rc) { *step = "add the host end's address"; goto out; }
    rc = link_up(host, host_index);
    if (rc) { *step = "bring the host end up"; goto out; }
    rc = link_up(job.sock, 1);  // loopback is always ifindex 1 in a namespace
    if (rc) { *step = "bring loopback up in the namespace"; goto out; }
    rc = link_index(job.sock, "eth0", &peer_index);
    if (rc) { *step = "find eth0 in the namespace"; goto out; }
    rc = add_address(job.sock, peer_index, sandbox_addr, prefix);
    if (rc) { *step = "add the sandbox's address"; goto out; }
    rc = link_up(job.sock, peer_index);
    if (rc) { *step = "bring eth0 up"; goto out; }
    rc = add_default_route(job.sock, peer_index, host_addr);
    if (rc) { *step = "add the default route"; goto out; }
out:
    if (host >= 0) close(host);
    if (job.sock >= 0) close(job.sock);
    if (job.nsfd >= 0) close(job.nsfd);
    return rc;
}

int robit_net_remove_namespace(const char *ns_path) {
    struct stat st;
    if (lstat(ns_path, &st) != 0) return errno;
    if (umount2(ns_path, MNT_DETACH) != 0 && errno != EINVAL) return errno;
    if (unlink(ns_path) != 0 && errno != ENOENT) return errno;
    return 0;
}

// ---- libnftables, loaded on first use ----

struct nft_ctx;
static struct {
    pthread_once_t once;
    pthread_mutex_t lock;
    char error[256];
    struct nft_ctx *(*ctx_new)(uint32_t);
    void (*ctx_free)(struct nft_ctx *);
    void (*output_set_flags)(struct nft_ctx *, unsigned int);
    int (*buffer_output)(struct nft_ctx *);
    int (*buffer_error)(struct nft_ctx *);
    const char *(*get_output)(struct nft_ctx *);
    const char *(*get_error)(struct nft_ctx *);
    int (*run)(struct nft_ctx *, const char *);
} nft = {.once = PTHREAD_ONCE_INIT, .lock = PTHREAD_MUTEX_INITIALIZER};

static void nft_load(void) {
    void *lib = dlopen("libnftables.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        snprintf(nft.error, sizeof nft.error, "%s", dlerror());
        return;
    }
#define SYM(field, name) if (!(*(void **)&nft.field = dlsym(lib, name))) { snprintf(nft.error, sizeof nft.error, "libnftables.so.1 has no %s", name); nft.ctx_new = NULL; return; }
    SYM(ctx_free, "nft_ctx_free")
    SYM(output_set_flags, "nft_ctx_output_set_flags")
    SYM(buffer_output, "nft_ctx_buffer_output")
    SYM(buffer_error, "nft_ctx_buffer_error")
    SYM(get_output, "nft_ctx_get_output_buffer")
    SYM(get_error, "nft_ctx_get_error_buffer")
    SYM(run, "nft_run_cmd_from_buffer")
    SYM(ctx_new, "nft_ctx_new")
#undef SYM
}

int robit_nft_run(const char *commands, int json, char **output, char **error) {
    *output = NULL;
    *error = NULL;
    pthread_once(&nft.once, nft_load);
    if (!nft.ctx_new) {
        *error = strdup(nft.error);
        return -1;
    }
    pthread_mutex_lock(&nft.lock);
    int rc = 1;
    struct nft_ctx *ctx = nft.ctx_new(0);
    if (!ctx) {
        *error = strdup("nft_ctx_new failed");
    } else {
        if (json) nft.output_set_flags(ctx, 1u << 4);  // NFT_CTX_OUTPUT_JSON
        nft.buffer_output(ctx);
        nft.buffer_error(ctx);
        rc = nft.run(ctx, commands) == 0 ? 0 : 1;
        const char *out = nft.get_output(ctx), *err = nft.get_error(ctx);
        if (out && *out) *output = strdup(out);
        if (err && *err) *error = strdup(err);
        nft.ctx_free(ctx);
    }
    pthread_mutex_unlock(&nft.lock);
    return rc;
}
