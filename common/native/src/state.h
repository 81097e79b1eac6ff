/* Per-environment scratch for raw6Send and raw4Send: one sendmmsg vector, reused by every call. */
#ifndef APLUS_STATE_H
#define APLUS_STATE_H

#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "aplus.h"
#include "gso.h"

struct addon_state {
  struct mmsghdr msgs[APLUS_MAX_BATCH];
  struct iovec iovs[APLUS_MAX_BATCH];
  struct sockaddr_in6 names[APLUS_MAX_BATCH];
  struct sockaddr_in names4[APLUS_MAX_BATCH]; /* raw4Send */
  union {
    struct cmsghdr align;
    unsigned char buf[APLUS_SEND_CTRL];
  } ctrl[APLUS_MAX_BATCH];
  /* tunWrite with a vnet header (gso.c): the plan of one batch and one write's iovec. */
  gro_item gro[APLUS_MAX_BATCH];
  int32_t gro_next[APLUS_MAX_BATCH];
  uint8_t gro_hdr[GRO_HDR_ROOM];
  struct iovec gro_iov[GRO_MAX_SEGS + 1];
};

/* Point message m of the scratch vector at one packet and its destination; returns its header. */
static inline struct msghdr *state_msg(addon_state *s, int m, void *name, socklen_t namelen, uint8_t *pkt, size_t len) {
  s->iovs[m].iov_base = pkt;
  s->iovs[m].iov_len = len;
  struct msghdr *h = &s->msgs[m].msg_hdr;
  memset(h, 0, sizeof *h);
  h->msg_name = name;
  h->msg_namelen = namelen;
  h->msg_iov = &s->iovs[m];
  h->msg_iovlen = 1;
  return h;
}

#endif
