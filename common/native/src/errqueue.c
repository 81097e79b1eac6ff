/*
 * The raw socket's error queue (IPV6_RECVERR): each message is one ICMPv6 error for a packet we
 * sent (origin icmp6: type, code, info = MTU for Packet Too Big, offender = the router) or a local
 * one (origin local: EMSGSIZE over the known path MTU, info = that MTU). msg_name holds the
 * destination of the failed packet; the data is the quoted start of our inner IPv4 packet.
 * Allocation is fine here: this is the error path.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/errqueue.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "poller.h"

int call_js(poller *p, int which, size_t argc, napi_value *argv) {
  napi_env env = p->env;
  napi_value fn, recv, result;
  if (p->refs[which] == NULL) return 0;
  if (napi_get_reference_value(env, p->refs[which], &fn) != napi_ok ||
      napi_get_reference_value(env, p->refs[R_RESOURCE], &recv) != napi_ok)
    return -1;
  napi_status s = napi_make_callback(env, p->actx, recv, fn, argc, argv, &result);
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (pending) {
    napi_value exc;
    if (napi_get_and_clear_last_exception(env, &exc) == napi_ok) napi_fatal_exception(env, exc);
    return -1;
  }
  return s == napi_ok ? 0 : -1;
}

static napi_value addr_string(napi_env env, const struct sockaddr *sa, socklen_t len) {
  napi_value v;
  char buf[INET6_ADDRSTRLEN];
  if (sa != NULL && sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6) &&
      inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, buf, sizeof buf) != NULL) {
    napi_create_string_utf8(env, buf, NAPI_AUTO_LENGTH, &v);
  } else if (sa != NULL && sa->sa_family == AF_INET &&
             inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, buf, sizeof buf) != NULL) {
    napi_create_string_utf8(env, buf, NAPI_AUTO_LENGTH, &v);
  } else {
    napi_get_null(env, &v);
  }
  return v;
}

static const char *origin_name(int o) {
  switch (o) {
    case SO_EE_ORIGIN_NONE: return "none";
    case SO_EE_ORIGIN_LOCAL: return "local";
    case SO_EE_ORIGIN_ICMP: return "icmp";
    case SO_EE_ORIGIN_ICMP6: return "icmp6";
    default: return "other";
  }
}

static void set_prop(napi_env env, napi_value o, const char *k, napi_value v) {
  napi_set_named_property(env, o, k, v);
}

static void set_num(napi_env env, napi_value o, const char *k, double n) {
  napi_value v;
  napi_create_double(env, n, &v);
  napi_set_named_property(env, o, k, v);
}

int report(poller *p, const char *origin, const struct sock_extended_err *ee, napi_value dst,
                  napi_value offender, const uint8_t *payload, size_t plen, int err) {
  napi_env env = p->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return -1;
  napi_value o, s, buf;
  void *copy;
  napi_create_object(env, &o);
  napi_create_string_utf8(env, origin, NAPI_AUTO_LENGTH, &s);
  set_prop(env, o, "origin", s);
  set_num(env, o, "errno", ee != NULL ? ee->ee_errno : (uint32_t)err);
  set_num(env, o, "type", ee != NULL ? ee->ee_type : 0);
  set_num(env, o, "code", ee != NULL ? ee->ee_code : 0);
  set_num(env, o, "info", ee != NULL ? ee->ee_info : 0);
  set_prop(env, o, "dst", dst);
  set_prop(env, o, "offender", offender);
  if (napi_create_buffer_copy(env, plen, plen > 0 ? payload : (const void *)"", &copy, &buf) == napi_ok)
    set_prop(env, o, "payload", buf);
  int rc = call_js(p, R_ONERROR, 1, &o);
  napi_close_handle_scope(env, scope);
  return rc;
}

void drain_errqueue(poller *p) {
  for (int k = 0; k < MAX_ERRQ && p->active; k++) {
    union { struct cmsghdr align; uint8_t buf[512]; } ctrl;
    struct sockaddr_in6 name;
    struct iovec iov = {p->scratch, SCRATCH};
    struct msghdr m;
    memset(&m, 0, sizeof m);
    m.msg_name = &name;
    m.msg_namelen = sizeof name;
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = ctrl.buf;
    m.msg_controllen = sizeof ctrl.buf;
    ssize_t n = recvmsg(p->fd, &m, MSG_ERRQUEUE | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      return; /* EAGAIN: queue empty */
    }
    p->st[ST_ERRQUEUE] += 1;
    const struct sock_extended_err *ee = NULL;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c != NULL; c = CMSG_NXTHDR(&m, c))
      if ((c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_RECVERR) ||
          (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_RECVERR))
        ee = (const struct sock_extended_err *)CMSG_DATA(c);
    if (ee == NULL) continue;
    napi_handle_scope scope;
    if (napi_open_handle_scope(p->env, &scope) != napi_ok) return;
    napi_value dst = addr_string(p->env, (struct sockaddr *)&name, m.msg_namelen);
    const struct sockaddr *off = SO_EE_OFFENDER(ee);
    napi_value offender = addr_string(p->env, off->sa_family == AF_UNSPEC ? NULL : off, sizeof(struct sockaddr_in6));
    int rc = report(p, origin_name(ee->ee_origin), ee, dst, offender, p->scratch, (size_t)n, 0);
    napi_close_handle_scope(p->env, scope);
    if (rc != 0) return;
  }
}
