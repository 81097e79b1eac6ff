/*
 * Raw IPv6 sockets with next header 4 (IPv4-in-IPv6, RFC 2473). The kernel builds and parses
 * the outer IPv6 header, fragments and reassembles, and queues ICMPv6 errors on the error queue
 * (IPV6_RECVERR). Receive gives the inner IPv4 packet, the IPv6 source in msg_name and the
 * local destination in IPV6_PKTINFO.
 */
#include <errno.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "aplus.h"

static int set_int(int fd, int level, int opt, int val) {
  return setsockopt(fd, level, opt, &val, sizeof val);
}

/* Forced buffer size (needs CAP_NET_ADMIN), else the ordinary one capped by the sysctl. */
static int set_buf(int fd, int force_opt, int opt, int bytes) {
  if (bytes <= 0) return 0;
  if (set_int(fd, SOL_SOCKET, force_opt, bytes) == 0) return 0;
  return set_int(fd, SOL_SOCKET, opt, bytes);
}

static int arg_addr16(napi_env env, napi_value v, const char *name, struct in6_addr *out, int *present) {
  uint8_t *d;
  size_t n;
  if (arg_bytes_or_null(env, v, name, &d, &n) != 0) return -1;
  *present = d != NULL;
  if (d == NULL) return 0;
  if (n != 16) {
    throw_range(env, "an IPv6 address Buffer must be 16 bytes");
    return -1;
  }
  memcpy(out, d, 16);
  return 0;
}

/*
 * raw6Open(bindAddr16|null, rcvbuf, sndbuf, proto) -> fd. proto 4 (IPPROTO_IPIP): the tunnel
 * socket. proto 58 (IPPROTO_ICMPV6): a send-only socket for the ICMPv6 errors the PRR makes;
 * its ICMP6_FILTER blocks every type (it never reads), and it has no error queue. The kernel
 * always computes the checksum of a raw ICMPv6 socket (IPV6_CHECKSUM is fixed at offset 2,
 * RFC 3542 §3.1): rawv6_push_pending_frames subtracts whatever the field holds and writes the
 * sum over the real pseudo header, so a correct checksum from the caller is kept as is.
 */
napi_value raw6_open(napi_env env, napi_callback_info info) {
  ARGS(4);
  struct in6_addr addr = IN6ADDR_ANY_INIT;
  int have_addr;
  int32_t rcvbuf, sndbuf, proto;
  if (arg_addr16(env, argv[0], "bind", &addr, &have_addr) != 0 || arg_int32(env, argv[1], "rcvbuf", &rcvbuf) != 0 ||
      arg_int32(env, argv[2], "sndbuf", &sndbuf) != 0 || arg_int32(env, argv[3], "proto", &proto) != 0)
    return NULL;
  if (proto != IPPROTO_IPIP && proto != IPPROTO_ICMPV6) return throw_range(env, "raw6Open: proto must be 4 or 58");

  int fd = socket(AF_INET6, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, proto);
  if (fd < 0)
    return throw_errno(env, proto == IPPROTO_IPIP ? "socket(AF_INET6, SOCK_RAW, IPPROTO_IPIP)" : "socket(AF_INET6, SOCK_RAW, IPPROTO_ICMPV6)", errno);
  const char *what = NULL;
  if (proto == IPPROTO_ICMPV6) {
    struct icmp6_filter f;
    ICMP6_FILTER_SETBLOCKALL(&f);
    if (setsockopt(fd, IPPROTO_ICMPV6, ICMP6_FILTER, &f, sizeof f) != 0) what = "ICMP6_FILTER";
    else if (set_buf(fd, SO_SNDBUFFORCE, SO_SNDBUF, sndbuf) != 0) what = "SO_SNDBUF";
  } else if (set_buf(fd, SO_RCVBUFFORCE, SO_RCVBUF, rcvbuf) != 0) what = "SO_RCVBUF";
  else if (set_buf(fd, SO_SNDBUFFORCE, SO_SNDBUF, sndbuf) != 0) what = "SO_SNDBUF";
  else if (set_int(fd, IPPROTO_IPV6, IPV6_RECVERR, 1) != 0) what = "IPV6_RECVERR";
  else if (set_int(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, 1) != 0) what = "IPV6_RECVPKTINFO";
  /* POLLERR then comes with POLLPRI, so libuv does not stop the poll handle (see poll.c). */
  else if (set_int(fd, SOL_SOCKET, SO_SELECT_ERR_QUEUE, 1) != 0) what = "SO_SELECT_ERR_QUEUE";
  if (what == NULL && have_addr) {
    struct sockaddr_in6 sa;
    memset(&sa, 0, sizeof sa);
    sa.sin6_family = AF_INET6;
    sa.sin6_addr = addr;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0) what = "bind";
  }
  if (what != NULL) {
    int err = errno;
    close(fd);
    return throw_errno(env, what, err);
  }
  return make_int(env, fd);
}

/* raw6SetPmtuDisc(fd, mode): IPV6_MTU_DISCOVER, 0 dont, 1 want, 2 do, 3 probe. */
napi_value raw6_set_pmtu_disc(napi_env env, napi_callback_info info) {
  ARGS(2);
  int32_t fd, mode;
  if (arg_int32(env, argv[0], "fd", &fd) != 0 || arg_int32(env, argv[1], "mode", &mode) != 0) return NULL;
  if (mode < IPV6_PMTUDISC_DONT || mode > IPV6_PMTUDISC_PROBE) return throw_range(env, "pmtudisc mode must be 0..3");
  if (set_int(fd, IPPROTO_IPV6, IPV6_MTU_DISCOVER, mode) != 0) return throw_errno(env, "IPV6_MTU_DISCOVER", errno);
  return NULL;
}

/* raw6SetDontFrag(fd, on): IPV6_DONTFRAG; an oversized send then fails with EMSGSIZE. */
napi_value raw6_set_dont_frag(napi_env env, napi_callback_info info) {
  ARGS(2);
  int32_t fd;
  bool on = false;
  if (arg_int32(env, argv[0], "fd", &fd) != 0) return NULL;
  napi_get_value_bool(env, argv[1], &on);
  if (set_int(fd, IPPROTO_IPV6, IPV6_DONTFRAG, on ? 1 : 0) != 0) return throw_errno(env, "IPV6_DONTFRAG", errno);
  return NULL;
}

/*
 * pathMtu(addr16) -> the kernel's current path MTU toward addr (route MTU, lowered by any
 * Packet Too Big learnt). Uses a scratch connected UDP socket; no packet is sent.
 */
napi_value path_mtu(napi_env env, napi_callback_info info) {
  ARGS(1);
  struct in6_addr addr;
  int have;
  if (arg_addr16(env, argv[0], "addr", &addr, &have) != 0) return NULL;
  if (!have) return throw_range(env, "pathMtu needs an address");
  int fd = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, "socket", errno);
  struct sockaddr_in6 sa;
  memset(&sa, 0, sizeof sa);
  sa.sin6_family = AF_INET6;
  sa.sin6_port = htons(9);
  sa.sin6_addr = addr;
  int mtu = 0;
  socklen_t len = sizeof mtu;
  const char *what = NULL;
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) what = "connect";
  else if (getsockopt(fd, IPPROTO_IPV6, IPV6_MTU, &mtu, &len) != 0) what = "IPV6_MTU";
  int err = errno;
  close(fd);
  if (what != NULL) return throw_errno(env, what, err);
  return make_int(env, mtu);
}
