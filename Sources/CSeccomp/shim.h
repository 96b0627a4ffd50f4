#pragma once
#include <seccomp.h>
#include <errno.h>

static inline uint32_t robit_scmp_act_errno(uint16_t e) { return SCMP_ACT_ERRNO(e); }
