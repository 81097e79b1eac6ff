/* Per-environment scratch for raw6Send: one sendmmsg vector, reused by every call. */
#ifndef APLUS_STATE_H
#define APLUS_STATE_H

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "aplus.h"

struct addon_state {
  struct mmsghdr msgs[APLUS_MAX_BATCH];
  struct iovec iovs[APLUS_MAX_BATCH];
  struct sockaddr_in6 names[APLUS_MAX_BATCH];
  union {
    struct cmsghdr align;
    unsigned char buf[APLUS_SEND_CTRL];
  } ctrl[APLUS_MAX_BATCH];
};

#endif
