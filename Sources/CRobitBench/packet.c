// robit-bench only: not part of robit.
#define _GNU_SOURCE
#include "CRobitBench.h"
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

// ---- for scripts/bench net: the kernel's part of runsc's network start ----

struct packet_job { double bind_ms, ring_ms; int err; };

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static void *packet_thread(void *arg) {
    struct packet_job *j = arg;
    // A network namespace of this thread's own: its loopback is the interface; nothing is sent.
    if (unshare(CLONE_NEWNET) != 0) { j->err = errno; return NULL; }
    int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(0x0003 /* ETH_P_ALL */));
    if (fd < 0) { j->err = errno; return NULL; }
    struct sockaddr_ll a;
    memset(&a, 0, sizeof a);
    a.sll_family = AF_PACKET;
    a.sll_protocol = htons(0x0003);
    a.sll_ifindex = 1;
    double t0 = now_ms();
    int r = bind(fd, (struct sockaddr *)&a, sizeof a);
    double t1 = now_ms();
    int version = TPACKET_V1;
    struct tpacket_req req = {.tp_block_size = 4096, .tp_block_nr = 16, .tp_frame_size = 2048, .tp_frame_nr = 32};
    if (r == 0) r = setsockopt(fd, SOL_PACKET, PACKET_VERSION, &version, sizeof version);
    double t2 = now_ms();
    if (r == 0) r = setsockopt(fd, SOL_PACKET, PACKET_RX_RING, &req, sizeof req);
    double t3 = now_ms();
    if (r != 0) j->err = errno;
    close(fd);
    j->bind_ms = t1 - t0;
    j->ring_ms = t3 - t2;
    return NULL;
}

int robit_bench_packet_setup(double *bind_ms, double *ring_ms) {
    struct packet_job j = {0, 0, 0};
    pthread_t t;
    int e = pthread_create(&t, NULL, packet_thread, &j);
    if (e) return e;
    pthread_join(t, NULL);
    *bind_ms = j.bind_ms;
    *ring_ms = j.ring_ms;
    return j.err;
}
