/*
 * raw6Send(fd, slab, offsets, lens, dsts, count, stats, srcs|null) -> packets sent.
 *
 * Packet i is slab[offsets[i] .. +lens[i]] (an inner IPv4 packet), sent to dsts[16i..16i+16].
 * With srcs, a non-zero srcs[16i..] selects the IPv6 source through an IPV6_PKTINFO cmsg (the
 * PRR answers from the endpoint address the CPE used); all-zero lets the kernel choose.
 *
 * Errors never stop the batch, except EAGAIN (the socket buffer is full: the rest of the batch
 * is dropped and counted, as a full qdisc would). With IPV6_RECVERR every ICMPv6 error also sets
 * the socket's pending error (sk_err), which the next send returns once if the poller has not
 * drained the error queue yet. So a packet failing with another errno (EHOSTUNREACH,
 * ENETUNREACH, ECONNREFUSED...) is retried once: if the retry goes, it counts in tx_deferred.
 * EMSGSIZE is not retried: a local EMSGSIZE also queues a report, and a retry would queue a
 * second one; the only pending EMSGSIZE follows a Packet Too Big, after which the packet is
 * likely too big anyway. Failed packets are counted by class (EMSGSIZE, ENOBUFS, other), skipped.
 */
#include <errno.h>
#include <string.h>

#include "state.h"

static void classify(double *st, int err) {
  if (err == EMSGSIZE) st[ST_TX_EMSGSIZE] += 1;
  else if (err == ENOBUFS) st[ST_TX_EAGAIN] += 1;
  else st[ST_TX_ERRORS] += 1;
}

/*
 * Sends msgs[0..m); returns packets sent. Sets *stop to 1 when EAGAIN cut the batch, to -errno
 * when the fd itself is bad (EBADF, ENOTSOCK: a caller bug, thrown).
 */
static int send_chunk(int fd, struct mmsghdr *msgs, int m, double *st, int *stop) {
  int i = 0, sent = 0, retried = -1;
  while (i < m) {
    st[ST_TX_SYSCALLS] += 1;
    int r = sendmmsg(fd, msgs + i, (unsigned)(m - i), MSG_DONTWAIT);
    if (r > 0) {
      if (retried == i) st[ST_TX_DEFERRED] += 1;
      for (int q = i; q < i + r; q++) st[ST_TX_BYTES] += msgs[q].msg_len;
      st[ST_TX_PACKETS] += r;
      sent += r;
      i += r;
      continue;
    }
    int err = errno;
    if (err == EINTR) continue;
    if (err == EAGAIN || err == EWOULDBLOCK) {
      st[ST_TX_EAGAIN] += m - i;
      *stop = 1;
      break;
    }
    if (err == EBADF || err == ENOTSOCK) {
      *stop = -err;
      break;
    }
    if (retried != i && err != ENOBUFS && err != EMSGSIZE) {
      retried = i;
      continue;
    }
    classify(st, err);
    i++;
  }
  return sent;
}

napi_value raw6_send(napi_env env, napi_callback_info info) {
  ARGS(8);
  int32_t fd, count, *offs, *lens;
  uint8_t *slab, *dsts, *srcs;
  size_t slab_len, noffs, nlens, ndsts, nsrcs;
  double *st;
  if (arg_int32(env, argv[0], "fd", &fd) != 0 || arg_bytes(env, argv[1], "slab", &slab, &slab_len) != 0 ||
      arg_i32array(env, argv[2], "offsets", &offs, &noffs) != 0 ||
      arg_i32array(env, argv[3], "lens", &lens, &nlens) != 0 || arg_bytes(env, argv[4], "dsts", &dsts, &ndsts) != 0 ||
      arg_int32(env, argv[5], "count", &count) != 0 || arg_stats(env, argv[6], &st) != 0 ||
      arg_bytes_or_null(env, argv[7], "srcs", &srcs, &nsrcs) != 0)
    return NULL;
  if (count < 0 || (size_t)count > noffs || (size_t)count > nlens || (size_t)count * 16 > ndsts ||
      (srcs != NULL && (size_t)count * 16 > nsrcs))
    return throw_range(env, "count exceeds offsets/lens/dsts/srcs length");
  addon_state *s = addon_get_state(env);
  if (s == NULL) return throw_range(env, "aplus_native: no instance state");

  static const uint8_t zero16[16];
  int32_t sent = 0;
  int stop = 0;
  st[ST_TX_BATCHES] += 1;
  for (int32_t base = 0; base < count && stop == 0; base += APLUS_MAX_BATCH) {
    int32_t end = count - base > APLUS_MAX_BATCH ? base + APLUS_MAX_BATCH : count;
    int m = 0;
    for (int32_t i = base; i < end; i++) {
      int64_t off = offs[i], len = lens[i];
      if (off < 0 || len <= 0 || off + len > (int64_t)slab_len) {
        st[ST_TX_ERRORS] += 1;
        continue;
      }
      struct sockaddr_in6 *sa = &s->names[m];
      memset(sa, 0, sizeof *sa);
      sa->sin6_family = AF_INET6;
      memcpy(&sa->sin6_addr, dsts + 16 * i, 16);
      struct msghdr *h = state_msg(s, m, sa, sizeof *sa, slab + off, (size_t)len);
      if (srcs != NULL && memcmp(srcs + 16 * i, zero16, 16) != 0) {
        h->msg_control = s->ctrl[m].buf;
        h->msg_controllen = CMSG_SPACE(sizeof(struct in6_pktinfo));
        struct cmsghdr *c = CMSG_FIRSTHDR(h);
        c->cmsg_level = IPPROTO_IPV6;
        c->cmsg_type = IPV6_PKTINFO;
        c->cmsg_len = CMSG_LEN(sizeof(struct in6_pktinfo));
        struct in6_pktinfo pi;
        memset(&pi, 0, sizeof pi);
        memcpy(&pi.ipi6_addr, srcs + 16 * i, 16);
        memcpy(CMSG_DATA(c), &pi, sizeof pi);
      }
      m++;
    }
    if (m > 0) sent += send_chunk(fd, s->msgs, m, st, &stop);
    if (stop < 0) return throw_errno(env, "sendmmsg", -stop);
    if (stop > 0) st[ST_TX_EAGAIN] += count - end;
  }
  return make_int(env, sent);
}
