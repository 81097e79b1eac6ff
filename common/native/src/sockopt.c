/* originalDst: where a connection that nftables `redirect`ed to a local listener was going. */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/netfilter_ipv4.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "aplus.h"

/* originalDst(fd) -> { address: "a.b.c.d", port }: getsockopt(SOL_IP, SO_ORIGINAL_DST), which
 * conntrack answers from the connection's original tuple (the address before the redirect). */
napi_value original_dst(napi_env env, napi_callback_info info) {
  ARGS(1);
  int32_t fd;
  if (arg_int32(env, argv[0], "fd", &fd) != 0) return NULL;
  if (fd < 0) return throw_range(env, "fd must be >= 0");
  struct sockaddr_in sa;
  socklen_t len = sizeof sa;
  memset(&sa, 0, sizeof sa);
  if (getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &sa, &len) != 0) return throw_errno(env, "getsockopt SO_ORIGINAL_DST", errno);
  char text[INET_ADDRSTRLEN];
  if (inet_ntop(AF_INET, &sa.sin_addr, text, sizeof text) == NULL) return throw_errno(env, "inet_ntop", errno);
  napi_value out, addr;
  if (napi_create_object(env, &out) != napi_ok) return NULL;
  if (napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &addr) != napi_ok) return NULL;
  napi_set_named_property(env, out, "address", addr);
  napi_set_named_property(env, out, "port", make_int(env, ntohs(sa.sin_port)));
  return out;
}
