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

#include <sys/uio.h>

#include "gso.h"
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

/* One packet through the TUN (the fallback); 1 if the kernel took it. vnet: behind a zero header. */
static int tun_one(int tun, int vnet, const uint8_t *p, size_t len, double *st) {
  static const uint8_t zero[VNET_HDR_LEN];
  struct iovec iov[2] = {{(void *)zero, VNET_HDR_LEN}, {(void *)p, len}};
  ssize_t n;
  do {
    st[ST_TX_SYSCALLS] += 1;
    n = vnet ? writev(tun, iov, 2) : write(tun, p, len);
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

typedef struct {
  int fd, tun, vnet;
  uint8_t *slab;
  size_t slab_len;
  const int32_t *offs, *lens;
  double *st;
  addon_state *s;
  int m;                          /* messages queued in s->msgs */
  int32_t idx[APLUS_MAX_BATCH];   /* packet index of message j */
  int32_t sent;
} out4;

/* Queue packet i for the raw socket (or, not IPv4, hand it to the TUN). */
static void queue_one(out4 *o, int32_t i) {
  int64_t off = o->offs[i], len = o->lens[i];
  if (off < 0 || len < 20 || off + len > (int64_t)o->slab_len || (o->slab[off] >> 4) != 4) {
    if (off >= 0 && len > 0 && off + len <= (int64_t)o->slab_len) o->sent += tun_one(o->tun, o->vnet, o->slab + off, (size_t)len, o->st); /* the TUN judges it */
    else o->st[ST_TX_ERRORS] += 1;
    return;
  }
  struct sockaddr_in *sa = &o->s->names4[o->m];
  memset(sa, 0, sizeof *sa);
  sa->sin_family = AF_INET;
  memcpy(&sa->sin_addr, o->slab + off + 16, 4);
  state_msg(o->s, o->m, sa, sizeof *sa, o->slab + off, (size_t)len);
  o->idx[o->m++] = i;
}

/* sendmmsg the queued messages. 0, 1 when EAGAIN dropped them (counted), -errno on a bad fd. */
static int flush_raw(out4 *o) {
  int m = o->m;
  o->m = 0;
  for (int j = 0; j < m;) {
    o->st[ST_TX_SYSCALLS] += 1;
    int r = sendmmsg(o->fd, o->s->msgs + j, (unsigned)(m - j), MSG_DONTWAIT);
    if (r > 0) {
      for (int q = j; q < j + r; q++) o->st[ST_TX_BYTES] += o->s->msgs[q].msg_len;
      o->st[ST_TX_PACKETS] += r;
      o->sent += r;
      j += r;
      continue;
    }
    int err = errno;
    if (err == EINTR) continue;
    if (err == EAGAIN || err == EWOULDBLOCK) {
      o->st[ST_TX_EAGAIN] += m - j;
      return 1;
    }
    if (err == EBADF || err == ENOTSOCK) return -err;
    /* Message j was refused: the TUN (the kernel's forwarding path) takes it instead. */
    int32_t i = o->idx[j];
    o->sent += tun_one(o->tun, o->vnet, o->slab + o->offs[i], (size_t)o->lens[i], o->st);
    j++;
  }
  return 0;
}

/*
 * A super-packet of coalesced TCP segments to the TUN (offloads): the kernel forwards it once.
 * Forwarding decrements the TTL the core already decremented for the raw path, so the
 * super-packet's TTL is raised by one first: its segments leave with the TTL they would have had.
 */
static void write_super(out4 *o, const gro_item *it, const int32_t *offs, const int32_t *lens) {
  addon_state *s = o->s;
  int niov = gro_iov(it, o->slab, offs, lens, s->gro_next, s->gro_hdr, s->gro_iov);
  gro_bump_ttl(s->gro_hdr);
  ssize_t n;
  do {
    o->st[ST_TX_SYSCALLS] += 1;
    n = writev(o->tun, s->gro_iov, niov);
  } while (n < 0 && errno == EINTR);
  if (n >= 0) {
    o->sent += it->n;
    o->st[ST_TX_PACKETS] += it->n;
    o->st[ST_TX_BYTES] += (double)it->n * it->hlen + it->payload;
    o->st[ST_GSO_TX] += 1;
  } else if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) {
    o->st[ST_TX_EAGAIN] += it->n;
  } else {
    o->st[ST_TX_ERRORS] += it->n;
  }
}

/*
 * raw4Send(rawFd, tunFd, slab, offsets, lens, count, stats, vnet) -> packets sent (either way).
 * Packet i is slab[offsets[i] .. +lens[i]], a whole IPv4 packet (header included). With vnet
 * (the TUN has offloads), runs of TCP segments of one flow are coalesced (gso.c) and written to
 * the TUN as one super-packet each; every other packet goes to the raw socket as before, in
 * order: the queued messages are sent before each super-packet.
 */
napi_value raw4_send(napi_env env, napi_callback_info info) {
  ARGS(8);
  int32_t fd, tun, count, *offs, *lens;
  uint8_t *slab;
  size_t slab_len, noffs, nlens;
  double *st;
  bool vnet = false;
  if (arg_int32(env, argv[0], "rawFd", &fd) != 0 || arg_int32(env, argv[1], "tunFd", &tun) != 0 ||
      arg_bytes(env, argv[2], "slab", &slab, &slab_len) != 0 || arg_i32array(env, argv[3], "offsets", &offs, &noffs) != 0 ||
      arg_i32array(env, argv[4], "lens", &lens, &nlens) != 0 || arg_int32(env, argv[5], "count", &count) != 0 ||
      arg_stats(env, argv[6], &st) != 0)
    return NULL;
  napi_get_value_bool(env, argv[7], &vnet);
  if (count < 0 || (size_t)count > noffs || (size_t)count > nlens) return throw_range(env, "count exceeds offsets/lens length");
  addon_state *s = addon_get_state(env);
  if (s == NULL) return throw_range(env, "aplus_native: no instance state");

  out4 ob = {.fd = fd, .tun = tun, .vnet = vnet, .slab = slab, .slab_len = slab_len, .offs = offs, .lens = lens, .st = st, .s = s};
  out4 *o = &ob;
  st[ST_TX_BATCHES] += 1;
  for (int32_t base = 0; base < count; base += APLUS_MAX_BATCH) {
    int32_t end = count - base > APLUS_MAX_BATCH ? base + APLUS_MAX_BATCH : count;
    int r = 0;
    if (vnet) {
      uint32_t bad = 0;
      int items = gro_plan(slab, slab_len, offs + base, lens + base, end - base, s->gro, s->gro_next, &bad);
      st[ST_TX_ERRORS] += bad;
      for (int k = 0; k < items; k++) {
        const gro_item *it = &s->gro[k];
        if (it->n == 1) {
          queue_one(o, base + it->first);
          continue;
        }
        if ((r = flush_raw(o)) != 0) {
          for (int q = k; r > 0 && q < items; q++) st[ST_TX_EAGAIN] += s->gro[q].n; /* not reached */
          break;
        }
        write_super(o, it, offs + base, lens + base);
      }
    } else {
      for (int32_t i = base; i < end; i++) queue_one(o, i);
    }
    if (r == 0) r = flush_raw(o);
    if (r < 0) return throw_errno(env, "sendmmsg raw IPv4", -r);
    if (r > 0) {
      st[ST_TX_EAGAIN] += count - end; /* a full send buffer drops the rest, as raw6Send does */
      break;
    }
  }
  return make_int(env, o->sent);
}
