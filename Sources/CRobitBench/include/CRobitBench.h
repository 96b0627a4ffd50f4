#pragma once

/// For scripts/bench net: what runsc's network start asks of the kernel for each interface, alone.
/// In a new network namespace on a thread of its own, binds an AF_PACKET socket (ETH_P_ALL) to the
/// loopback and sets up a PACKET_RX_RING; returns how long each took. 0 or an errno.
int robit_bench_packet_setup(double *bind_ms, double *ring_ms);
