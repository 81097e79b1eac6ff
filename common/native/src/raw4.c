/*
 * IPv4 output through a raw socket instead of the TUN (the PRR's decapsulated traffic).
 *
 * Writing a packet to a TUN costs one write() each: the kernel has no batched TUN write for
 * separate packets (IFF_VNET_HDR + TUNSETOFFLOAD only merges segments of one flow). A raw
 * IPPROTO_RAW socket (IP_HDRINCL implied) takes a whole batch in one sendmmsg(), and the kernel
 * routes each packet by its destination, out of whatever interface the routing table says, as
 * forwarding from the TUN would; the source may be any address (HDRINCL sets FLOWI_FLAG_ANYSRC).
 * The differences: the packets are locally generated (nftables output/postrouting hooks, not
 * forward; no iif for policy routing), the kernel does not decrement the TTL (the caller is the
 * hop: the PRR core's ttlToInternet), it fills in tot_len, the header checksum and a zero IP ID,
 * and it never fragments: a packet over the route MTU fails with EMSGSIZE. Every packet the raw
 * socket refuses (EMSGSIZE, unreachable, filtered...) is written to the TUN instead, so the
 * kernel's forwarding path does what it did before (fragment, Fragmentation Needed, Unreachable;
 * it also decrements the TTL once more), and counted in tx_fallback. EAGAIN (send buffer full)
 * drops the rest of the batch, as for raw6Send.
 */
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "state.h"

/* raw4Open(sndbuf) -> fd: a send-only socket(AF_INET, SOCK_RAW, IPPROTO_RAW). */
napi_value raw4_open(napi_env env, napi_callback_info info) {
  ARGS(1);
  int32_t sndbuf;
  if (arg_int32(env, argv[0], "sndbuf", &sndbuf) != 0) return NULL;
  int fd = socket(AF_INET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_RAW);
  if (fd < 0) return throw_errno(env, "socket(AF_INET, SOCK_RAW, IPPROTO_RAW)", errno);
  if (sndbuf > 0 && setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof sndbuf) != 0 &&
      setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf) != 0) {
    int err = errno;
    close(fd);
    return throw_errno(env, "SO_SNDBUF", err);
  }
  return make_int(env, fd);
}

/* One packet through the TUN (the fallback); 1 if the kernel took it. */
static int tun_one(int tun, const uint8_t *p, size_t len, double *st) {
  ssize_t n;
  do {
    st[ST_TX_SYSCALLS] += 1;
    n = write(tun, p, len);
  } while (n < 0 && errno == EINTR);
  if (n >= 0) {
    st[ST_TX_FALLBACK] += 1;
    return 1;
  }
  if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) st[ST_TX_EAGAIN] += 1;
  else if (errno == EMSGSIZE) st[ST_TX_EMSGSIZE] += 1;
  else st[ST_TX_ERRORS] += 1;
  return 0;
}

/*
 * raw4Send(rawFd, tunFd, slab, offsets, lens, count, stats) -> packets sent (either way).
 * Packet i is slab[offsets[i] .. +lens[i]], a whole IPv4 packet (header included).
 */
napi_value raw4_send(napi_env env, napi_callback_info info) {
  ARGS(7);
  int32_t fd, tun, count, *offs, *lens;
  uint8_t *slab;
  size_t slab_len, noffs, nlens;
  double *st;
  if (arg_int32(env, argv[0], "rawFd", &fd) != 0 || arg_int32(env, argv[1], "tunFd", &tun) != 0 ||
      arg_bytes(env, argv[2], "slab", &slab, &slab_len) != 0 || arg_i32array(env, argv[3], "offsets", &offs, &noffs) != 0 ||
      arg_i32array(env, argv[4], "lens", &lens, &nlens) != 0 || arg_int32(env, argv[5], "count", &count) != 0 ||
      arg_stats(env, argv[6], &st) != 0)
    return NULL;
  if (count < 0 || (size_t)count > noffs || (size_t)count > nlens) return throw_range(env, "count exceeds offsets/lens length");
  addon_state *s = addon_get_state(env);
  if (s == NULL) return throw_range(env, "aplus_native: no instance state");

  int32_t sent = 0;
  st[ST_TX_BATCHES] += 1;
  for (int32_t base = 0; base < count; base += APLUS_MAX_BATCH) {
    int32_t end = count - base > APLUS_MAX_BATCH ? base + APLUS_MAX_BATCH : count;
    int m = 0;
    int32_t idx[APLUS_MAX_BATCH]; /* packet index of message j */
    for (int32_t i = base; i < end; i++) {
      int64_t off = offs[i], len = lens[i];
      if (off < 0 || len < 20 || off + len > (int64_t)slab_len || (slab[off] >> 4) != 4) {
        if (off >= 0 && len > 0 && off + len <= (int64_t)slab_len) sent += tun_one(tun, slab + off, (size_t)len, st); /* the TUN judges it */
        else st[ST_TX_ERRORS] += 1;
        continue;
      }
      struct sockaddr_in *sa = &s->names4[m];
      memset(sa, 0, sizeof *sa);
      sa->sin_family = AF_INET;
      memcpy(&sa->sin_addr, slab + off + 16, 4);
      state_msg(s, m, sa, sizeof *sa, slab + off, (size_t)len);
      idx[m++] = i;
    }
    for (int j = 0; j < m;) {
      st[ST_TX_SYSCALLS] += 1;
      int r = sendmmsg(fd, s->msgs + j, (unsigned)(m - j), MSG_DONTWAIT);
      if (r > 0) {
        for (int q = j; q < j + r; q++) st[ST_TX_BYTES] += s->msgs[q].msg_len;
        st[ST_TX_PACKETS] += r;
        sent += r;
        j += r;
        continue;
      }
      int err = errno;
      if (err == EINTR) continue;
      if (err == EAGAIN || err == EWOULDBLOCK) {
        st[ST_TX_EAGAIN] += (m - j) + (count - end);
        return make_int(env, sent);
      }
      if (err == EBADF || err == ENOTSOCK) return throw_errno(env, "sendmmsg raw IPv4", err);
      /* Message j was refused: the TUN (the kernel's forwarding path) takes it instead. */
      int32_t i = idx[j];
      sent += tun_one(tun, slab + offs[i], (size_t)lens[i], st);
      j++;
    }
  }
  return make_int(env, sent);
}
