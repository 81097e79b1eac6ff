/*
 * TUN devices: IFF_TUN|IFF_NO_PI, so each read/write is exactly one IPv4 (or IPv6) packet; with
 * offloads, IFF_VNET_HDR too: each read/write starts with a 10-byte virtio_net_hdr, and the kernel
 * may hand us (and takes from us) TCP/UDP super-packets of up to 64 KiB (gso.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

#include "aplus.h"
#include "gso.h"
#include "state.h"

#ifndef TUN_F_USO4
#define TUN_F_USO4 0x20 /* Linux 6.2; older uapi headers lack them */
#define TUN_F_USO6 0x40
#endif

/*
 * The offloads we take: partial checksums, TSO for IPv4 and IPv6 (the kernel wants both for its
 * TSO feature bits; only IPv4 is routed to us), and UDP segmentation (USO, Linux >= 6.2: 4 and
 * 6 together or EINVAL). Without USO (an older kernel) TCP alone is still worth it.
 */
static int set_offload(int fd) {
  const int vnet = VNET_HDR_LEN;
  if (ioctl(fd, TUNSETVNETHDRSZ, &vnet) != 0) return -1;
  unsigned long base = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6;
  if (ioctl(fd, TUNSETOFFLOAD, base | TUN_F_USO4 | TUN_F_USO6) == 0) return 0;
  return ioctl(fd, TUNSETOFFLOAD, base);
}

static int open_tun(const char *name, size_t nlen, bool mq, bool vnet, struct ifreq *ifr, const char **what) {
  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    *what = "open /dev/net/tun";
    return -1;
  }
  memset(ifr, 0, sizeof *ifr);
  ifr->ifr_flags = IFF_TUN | IFF_NO_PI | (mq ? IFF_MULTI_QUEUE : 0) | (vnet ? IFF_VNET_HDR : 0);
  memcpy(ifr->ifr_name, name, nlen);
  if (ioctl(fd, TUNSETIFF, ifr) != 0) {
    *what = "TUNSETIFF";
  } else if (vnet && set_offload(fd) != 0) {
    *what = "TUNSETOFFLOAD";
  } else {
    return fd;
  }
  int err = errno;
  close(fd);
  errno = err;
  return -1;
}

/*
 * tunOpen(name, multiQueue, offload) -> { fd, name, offload }. name may hold %d; the kernel
 * picks the number. With offload, the device is opened with IFF_VNET_HDR and TUNSETOFFLOAD; if
 * the kernel refuses either, it is opened again without (offload: false in the result).
 */
napi_value tun_open(napi_env env, napi_callback_info info) {
  ARGS(3);
  char name[IFNAMSIZ + 1];
  size_t nlen = 0;
  if (napi_get_value_string_utf8(env, argv[0], name, sizeof name, &nlen) != napi_ok) {
    napi_throw_type_error(env, NULL, "argument name must be a string");
    return NULL;
  }
  if (nlen == 0 || nlen >= IFNAMSIZ) return throw_range(env, "TUN name must be 1..15 bytes");
  bool mq = false, offload = false;
  napi_get_value_bool(env, argv[1], &mq);
  napi_get_value_bool(env, argv[2], &offload);

  struct ifreq ifr;
  const char *what = NULL;
  int fd = -1;
  if (offload) fd = open_tun(name, nlen, mq, true, &ifr, &what);
  if (fd < 0) {
    offload = false;
    fd = open_tun(name, nlen, mq, false, &ifr, &what);
  }
  if (fd < 0) {
    char msg[64];
    snprintf(msg, sizeof msg, "%s %s", what, name);
    return throw_errno(env, msg, errno);
  }
  napi_value obj, vfd, vname, voff;
  ifr.ifr_name[IFNAMSIZ - 1] = 0;
  if (napi_create_object(env, &obj) != napi_ok || napi_create_int32(env, fd, &vfd) != napi_ok ||
      napi_create_string_utf8(env, ifr.ifr_name, NAPI_AUTO_LENGTH, &vname) != napi_ok ||
      napi_get_boolean(env, offload, &voff) != napi_ok) {
    close(fd);
    return NULL;
  }
  napi_set_named_property(env, obj, "fd", vfd);
  napi_set_named_property(env, obj, "name", vname);
  napi_set_named_property(env, obj, "offload", voff);
  return obj;
}

/* What one write() of `pkts` packets (`bytes` bytes) did: 0 go on, 1 stop (EAGAIN), -1 EBADF. */
static int account(ssize_t n, int err, int32_t pkts, double bytes, int32_t *written, double *st) {
  if (n >= 0) {
    *written += pkts;
    st[ST_TX_PACKETS] += pkts;
    st[ST_TX_BYTES] += bytes;
    return 0;
  }
  if (err == EAGAIN || err == EWOULDBLOCK) return 1;
  if (err == ENOBUFS) st[ST_TX_EAGAIN] += pkts;
  else if (err == EMSGSIZE) st[ST_TX_EMSGSIZE] += pkts;
  else if (err == EBADF) return -1;
  else st[ST_TX_ERRORS] += pkts;
  return 0;
}

static ssize_t writev_retry(int fd, const struct iovec *iov, int n, double *st) {
  ssize_t r;
  do {
    st[ST_TX_SYSCALLS] += 1;
    r = writev(fd, iov, n);
  } while (r < 0 && errno == EINTR);
  return r;
}

/*
 * With a vnet header: the batch is planned (gso.c), each item is one writev(): a super-packet of
 * coalesced TCP segments, or a single packet behind a zero header. Counted in packets (members).
 */
static int write_vnet(int fd, uint8_t *slab, size_t slab_len, const int32_t *offs, const int32_t *lens, int32_t count,
                      double *st, addon_state *s, int32_t *written) {
  for (int32_t base = 0; base < count; base += APLUS_MAX_BATCH) {
    int32_t m = count - base > APLUS_MAX_BATCH ? APLUS_MAX_BATCH : count - base;
    uint32_t bad = 0;
    int items = gro_plan(slab, slab_len, offs + base, lens + base, m, s->gro, s->gro_next, &bad);
    st[ST_TX_ERRORS] += bad;
    for (int k = 0; k < items; k++) {
      const gro_item *it = &s->gro[k];
      int niov = gro_iov(it, slab, offs + base, lens + base, s->gro_next, s->gro_hdr, s->gro_iov);
      ssize_t n = writev_retry(fd, s->gro_iov, niov, st);
      int r = account(n, errno, it->n, it->n == 1 ? (double)lens[base + it->first] : (double)it->n * it->hlen + it->payload,
                      written, st);
      if (n >= 0 && it->n > 1) st[ST_GSO_TX] += 1;
      if (r < 0) return -1;
      if (r > 0) {
        for (int q = k; q < items; q++) st[ST_TX_EAGAIN] += s->gro[q].n;
        st[ST_TX_EAGAIN] += count - base - m;
        return 0;
      }
    }
  }
  return 0;
}

/*
 * tunWrite(fd, slab, offsets, lens, count, stats, vnet) -> packets written.
 * Without vnet, one write() per packet inside this one call; with vnet (a TUN opened with
 * offloads), one writev() per super-packet or single packet (write_vnet). A bad packet (kernel
 * EINVAL, out-of-slab offsets) is counted in tx_errors and skipped; EAGAIN drops the rest.
 */
napi_value tun_write(napi_env env, napi_callback_info info) {
  ARGS(7);
  int32_t fd, count, *offs, *lens;
  uint8_t *slab;
  size_t slab_len, noffs, nlens;
  double *st;
  bool vnet = false;
  if (arg_int32(env, argv[0], "fd", &fd) != 0 || arg_bytes(env, argv[1], "slab", &slab, &slab_len) != 0 ||
      arg_i32array(env, argv[2], "offsets", &offs, &noffs) != 0 ||
      arg_i32array(env, argv[3], "lens", &lens, &nlens) != 0 || arg_int32(env, argv[4], "count", &count) != 0 ||
      arg_stats(env, argv[5], &st) != 0)
    return NULL;
  napi_get_value_bool(env, argv[6], &vnet);
  if (count < 0 || (size_t)count > noffs || (size_t)count > nlens)
    return throw_range(env, "count exceeds offsets/lens length");

  int32_t written = 0;
  st[ST_TX_BATCHES] += 1;
  if (vnet) {
    addon_state *s = addon_get_state(env);
    if (s == NULL) return throw_range(env, "aplus_native: no instance state");
    if (write_vnet(fd, slab, slab_len, offs, lens, count, st, s, &written) != 0) return throw_errno(env, "write TUN", EBADF);
    return make_int(env, written);
  }
  for (int32_t i = 0; i < count; i++) {
    int64_t off = offs[i], len = lens[i];
    if (off < 0 || len <= 0 || off + len > (int64_t)slab_len) {
      st[ST_TX_ERRORS] += 1;
      continue;
    }
    ssize_t n;
    do {
      st[ST_TX_SYSCALLS] += 1;
      n = write(fd, slab + off, (size_t)len);
    } while (n < 0 && errno == EINTR);
    int r = account(n, errno, 1, (double)n, &written, st);
    if (r < 0) return throw_errno(env, "write TUN", EBADF);
    if (r > 0) {
      st[ST_TX_EAGAIN] += count - i;
      break;
    }
  }
  return make_int(env, written);
}
