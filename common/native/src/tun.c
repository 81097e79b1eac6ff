/* TUN devices: IFF_TUN|IFF_NO_PI, so each read/write is exactly one IPv4 (or IPv6) packet. */
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "aplus.h"

/* tunOpen(name, multiQueue) -> { fd, name }. name may hold %d; the kernel picks the number. */
napi_value tun_open(napi_env env, napi_callback_info info) {
  ARGS(2);
  char name[IFNAMSIZ + 1];
  size_t nlen = 0;
  if (napi_get_value_string_utf8(env, argv[0], name, sizeof name, &nlen) != napi_ok) {
    napi_throw_type_error(env, NULL, "argument name must be a string");
    return NULL;
  }
  if (nlen == 0 || nlen >= IFNAMSIZ) return throw_range(env, "TUN name must be 1..15 bytes");
  bool mq = false;
  napi_get_value_bool(env, argv[1], &mq);

  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return throw_errno(env, "open /dev/net/tun", errno);
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI | (mq ? IFF_MULTI_QUEUE : 0);
  memcpy(ifr.ifr_name, name, nlen);
  if (ioctl(fd, TUNSETIFF, &ifr) != 0) {
    int err = errno;
    close(fd);
    char what[64];
    snprintf(what, sizeof what, "TUNSETIFF %s", name);
    return throw_errno(env, what, err);
  }
  napi_value obj, vfd, vname;
  ifr.ifr_name[IFNAMSIZ - 1] = 0;
  if (napi_create_object(env, &obj) != napi_ok || napi_create_int32(env, fd, &vfd) != napi_ok ||
      napi_create_string_utf8(env, ifr.ifr_name, NAPI_AUTO_LENGTH, &vname) != napi_ok) {
    close(fd);
    return NULL;
  }
  napi_set_named_property(env, obj, "fd", vfd);
  napi_set_named_property(env, obj, "name", vname);
  return obj;
}

/*
 * tunWrite(fd, slab, offsets, lens, count, stats) -> packets written.
 * One write() per packet inside this one call. A bad packet (kernel EINVAL, out-of-slab
 * offsets) is counted in tx_errors and skipped; EAGAIN drops the rest of the batch.
 */
napi_value tun_write(napi_env env, napi_callback_info info) {
  ARGS(6);
  int32_t fd, count, *offs, *lens;
  uint8_t *slab;
  size_t slab_len, noffs, nlens;
  double *st;
  if (arg_int32(env, argv[0], "fd", &fd) != 0 || arg_bytes(env, argv[1], "slab", &slab, &slab_len) != 0 ||
      arg_i32array(env, argv[2], "offsets", &offs, &noffs) != 0 ||
      arg_i32array(env, argv[3], "lens", &lens, &nlens) != 0 || arg_int32(env, argv[4], "count", &count) != 0 ||
      arg_stats(env, argv[5], &st) != 0)
    return NULL;
  if (count < 0 || (size_t)count > noffs || (size_t)count > nlens)
    return throw_range(env, "count exceeds offsets/lens length");

  int32_t written = 0;
  st[ST_TX_BATCHES] += 1;
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
    if (n >= 0) {
      written++;
      st[ST_TX_PACKETS] += 1;
      st[ST_TX_BYTES] += (double)n;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      st[ST_TX_EAGAIN] += count - i;
      break;
    } else if (errno == ENOBUFS) {
      st[ST_TX_EAGAIN] += 1;
    } else if (errno == EMSGSIZE) {
      st[ST_TX_EMSGSIZE] += 1;
    } else if (errno == EBADF) {
      return throw_errno(env, "write TUN", errno);
    } else {
      st[ST_TX_ERRORS] += 1;
    }
  }
  return make_int(env, written);
}
