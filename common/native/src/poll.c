/*
 * Batched receive: one uv_poll per fd. On a readable event the poller reads every ready packet
 * (up to `batch`) into the JS-owned slab, then makes ONE JS call onBatch(count); it repeats while
 * full batches keep coming, at most MAX_ROUNDS times per event (fairness with other fds).
 *
 *   slot i = slab[i*slotSize .. (i+1)*slotSize); packet i at slot i + headroom, length lens[i]
 *   raw6: srcs[16i..] = outer IPv6 source (msg_name), dsts[16i..] = local destination (PKTINFO)
 *
 * raw6 also drains the error queue (MSG_ERRQUEUE) and calls onError(report) for each message.
 * The socket sets SO_SELECT_ERR_QUEUE and we poll UV_PRIORITIZED too: a queued error (or pending
 * sk_err) then raises POLLERR|POLLPRI, which libuv delivers as UV_PRIORITIZED instead of stopping
 * the handle, so the queue is drained exactly on the events that have something in it (no extra
 * syscall per wakeup), and also after recvmmsg reports a pending socket error. If libuv stops the
 * handle anyway (status < 0: POLLERR without POLLPRI), the poller drains, reports and restarts
 * it (poll_restarts).
 *
 * Lifetime: pollStop marks the poller inactive, uv_close()s the handle (libuv removes the fd from
 * epoll at once, so the caller may close(fd) right after) and frees the memory in the close
 * callback. JS references are dropped at pollStop, or after the running callback returns if
 * pollStop was called from inside onBatch/onError.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "gso.h"
#include "poller.h"

static void free_poller(poller *p) {
  free(p->msgs);
  free(p->iovs);
  free(p->names);
  free(p->ctrl);
  free(p->scratch);
  free(p->big);
  free(p);
}

static void on_closed(uv_handle_t *h) { free_poller((poller *)h); }

/* Drop everything that keeps JS objects alive. Only on the JS thread, outside a callback. */
static void release_js(poller *p) {
  if (p->js_released) return;
  p->js_released = 1;
  for (int i = 0; i < 8; i++)
    if (p->refs[i] != NULL) napi_delete_reference(p->env, p->refs[i]);
  if (p->actx != NULL) napi_async_destroy(p->env, p->actx);
}

static void stop_uv(poller *p) {
  if (!p->active) return;
  p->active = 0;
  uv_close((uv_handle_t *)&p->handle, on_closed);
}

/* Environment teardown (worker exit): stop polling, leave JS alone. */
static void env_cleanup(void *arg) { stop_uv(arg); }


static int deliver(poller *p, uint32_t count) {
  p->st[ST_RX_BATCHES] += 1;
  p->st[ST_RX_PACKETS] += count;
  napi_value n;
  napi_create_uint32(p->env, count, &n);
  return call_js(p, R_ONBATCH, 1, &n);
}

static void rx_tun(poller *p) {
  for (int round = 0; round < MAX_ROUNDS && p->active; round++) {
    uint32_t k = 0;
    while (k < p->batch) {
      struct iovec iov[2] = {{p->slab + (size_t)k * p->slot + p->headroom, p->cap}, {p->scratch, SCRATCH}};
      p->st[ST_RX_SYSCALLS] += 1;
      ssize_t n = readv(p->fd, iov, 2);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) p->st[ST_RX_ERRORS] += 1;
        break;
      }
      if ((size_t)n > p->cap) {
        p->st[ST_RX_TRUNCATED] += 1;
        continue;
      }
      p->lens[k++] = (int32_t)n;
      p->st[ST_RX_BYTES] += (double)n;
    }
    if (k > 0 && deliver(p, k) != 0) return;
    if (k < p->batch) return;
  }
}

/*
 * A TUN with offloads: each read is [vnet header][packet]. The packet lands in its slot (the rest
 * of a super-packet in big + cap). A plain packet stays there, its partial checksum completed; a
 * super-packet is made contiguous in big and cut into as many slots (vnet_to_slots). When the
 * ring fills up in the middle of one, the batch is delivered and the cutting goes on.
 */
static void rx_tun_vnet(poller *p) {
  for (int round = 0; round < MAX_ROUNDS && p->active; round++) {
    uint32_t k = 0;
    int more = 1;
    while (k < p->batch) {
      vnet_hdr h;
      uint8_t *slot = p->slab + (size_t)k * p->slot + p->headroom;
      struct iovec iov[3] = {{&h, VNET_HDR_LEN}, {slot, p->cap}, {p->big + p->cap, VNET_BIG}};
      p->st[ST_RX_SYSCALLS] += 1;
      ssize_t n = readv(p->fd, iov, 3);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) p->st[ST_RX_ERRORS] += 1;
        more = 0;
        break;
      }
      if (n < VNET_HDR_LEN) {
        p->st[ST_GSO_BAD] += 1;
        continue;
      }
      size_t len = (size_t)n - VNET_HDR_LEN;
      if (len > (size_t)p->cap + VNET_BIG || (h.gso_type == VNET_GSO_NONE && len > p->cap)) {
        p->st[ST_RX_TRUNCATED] += 1;
        continue;
      }
      if (h.gso_type == VNET_GSO_NONE) {
        if (vnet_complete_csum(&h, slot, len) != 0) {
          p->st[ST_GSO_BAD] += 1;
          continue;
        }
        p->lens[k++] = (int32_t)len;
        p->st[ST_RX_BYTES] += (double)len;
        continue;
      }
      memcpy(p->big, slot, len < p->cap ? len : p->cap);
      uint32_t seg = 0;
      do {
        if (k == p->batch) { /* the ring is full: deliver, cut the rest into an empty one */
          if (deliver(p, k) != 0) return;
          k = 0;
          if (!p->active) return;
        }
        int m = vnet_to_slots(&h, p->big, len, p->slab, p->slot, p->headroom, p->cap, k, p->batch - k, p->lens, &seg);
        if (m < 0) {
          p->st[ST_GSO_BAD] += 1; /* only on the first cut: nothing of it was handed on */
          break;
        }
        if (seg == 0) p->st[ST_GSO_RX] += 1;
        for (int i = 0; i < m; i++) p->st[ST_RX_BYTES] += p->lens[k + (uint32_t)i];
        k += (uint32_t)m;
      } while (seg != 0);
    }
    if (k > 0 && deliver(p, k) != 0) return;
    if (!more) return;
  }
}

static void rx_raw6(poller *p) {
  int sock_errors = 0;
  for (int round = 0; round < MAX_ROUNDS && p->active; round++) {
    for (uint32_t i = 0; i < p->batch; i++) {
      struct msghdr *h = &p->msgs[i].msg_hdr;
      h->msg_namelen = sizeof(struct sockaddr_in6);
      h->msg_controllen = RX_CTRL;
      h->msg_flags = 0;
    }
    p->st[ST_RX_SYSCALLS] += 1;
    int n = recvmmsg(p->fd, p->msgs, p->batch, MSG_DONTWAIT, NULL);
    if (n < 0) {
      if (errno == EINTR) { round--; continue; }
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      /* A pending socket error (ICMP-driven sk_err): consumed by this call; keep reading. */
      p->st[ST_RX_ERRORS] += 1;
      if (++sock_errors > MAX_SOCK_ERRORS) return;
      drain_errqueue(p);
      round--;
      continue;
    }
    uint32_t k = 0;
    for (int i = 0; i < n; i++) {
      struct msghdr *h = &p->msgs[i].msg_hdr;
      uint32_t len = p->msgs[i].msg_len;
      if (h->msg_flags & MSG_TRUNC) {
        p->st[ST_RX_TRUNCATED] += 1;
        continue;
      }
      if (k != (uint32_t)i) /* compact over a dropped slot (rare) */
        memmove(p->slab + (size_t)k * p->slot + p->headroom, p->slab + (size_t)i * p->slot + p->headroom, len);
      p->lens[k] = (int32_t)len;
      memcpy(p->srcs + 16 * k, &p->names[i].sin6_addr, 16);
      memset(p->dsts + 16 * k, 0, 16);
      for (struct cmsghdr *c = CMSG_FIRSTHDR(h); c != NULL; c = CMSG_NXTHDR(h, c))
        if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO)
          memcpy(p->dsts + 16 * k, &((const struct in6_pktinfo *)CMSG_DATA(c))->ipi6_addr, 16);
      p->st[ST_RX_BYTES] += len;
      k++;
    }
    if (k > 0 && deliver(p, k) != 0) return;
    if ((uint32_t)n < p->batch) return;
  }
}

static void on_poll(uv_poll_t *h, int status, int events) {
  poller *p = (poller *)h;
  if (!p->active) return;
  napi_env env = p->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  p->in_cb++;
  p->st[ST_RX_WAKEUPS] += 1;
  if (p->kind == KIND_RAW6 && (status < 0 || (events & UV_PRIORITIZED))) drain_errqueue(p);
  if (p->active) (p->kind == KIND_RAW6 ? rx_raw6 : p->kind == KIND_TUN_VNET ? rx_tun_vnet : rx_tun)(p);
  if (status < 0 && p->active) {
    /* libuv stopped the handle (POLLERR without POLLPRI). Restart while the fd is alive. */
    if (p->kind == KIND_RAW6 && fcntl(p->fd, F_GETFD) >= 0 && uv_poll_start(h, p->uv_events, on_poll) == 0) {
      p->st[ST_POLL_RESTARTS] += 1;
    } else {
      p->st[ST_RX_ERRORS] += 1; /* the handle stays stopped; onError (if any) says why */
      napi_value null;
      napi_get_null(env, &null);
      report(p, "poll", NULL, null, null, NULL, 0, -status);
    }
  }
  p->in_cb--;
  if (!p->active && p->in_cb == 0) release_js(p);
  napi_close_handle_scope(env, scope);
}


static int keep(napi_env env, napi_value v, napi_ref *ref) {
  if (is_nullish(env, v)) return 0;
  return napi_create_reference(env, v, 1, ref) == napi_ok ? 0 : -1;
}

static int arg_fn_or_null(napi_env env, napi_value v, const char *name) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) == napi_ok && (t == napi_function || t == napi_null || t == napi_undefined)) return 0;
  char msg[96];
  snprintf(msg, sizeof msg, "argument %s must be a function", name);
  napi_throw_type_error(env, NULL, msg);
  return -1;
}

static void box_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  free(data); /* the poller (if still running) does not point back at its box */
}

/*
 * pollStart(fd, kind 0=tun|1=raw6|2=tun with vnet header, slab, slotSize, headroom, batch, lens, srcs|null, dsts|null,
 *           stats, onBatch(count), onError(report)|null) -> handle
 */
napi_value poll_start(napi_env env, napi_callback_info info) {
  ARGS(12);
  int32_t fd, kind, slot, headroom, batch, *lens;
  uint8_t *slab, *srcs, *dsts;
  size_t slab_len, nlens, nsrcs, ndsts;
  double *st;
  if (arg_int32(env, argv[0], "fd", &fd) != 0 || arg_int32(env, argv[1], "kind", &kind) != 0 ||
      arg_bytes(env, argv[2], "slab", &slab, &slab_len) != 0 || arg_int32(env, argv[3], "slotSize", &slot) != 0 ||
      arg_int32(env, argv[4], "headroom", &headroom) != 0 || arg_int32(env, argv[5], "batch", &batch) != 0 ||
      arg_i32array(env, argv[6], "lens", &lens, &nlens) != 0 ||
      arg_bytes_or_null(env, argv[7], "srcs", &srcs, &nsrcs) != 0 ||
      arg_bytes_or_null(env, argv[8], "dsts", &dsts, &ndsts) != 0 || arg_stats(env, argv[9], &st) != 0 ||
      arg_fn_or_null(env, argv[10], "onBatch") != 0 || arg_fn_or_null(env, argv[11], "onError") != 0)
    return NULL;
  if (kind != KIND_TUN && kind != KIND_RAW6 && kind != KIND_TUN_VNET)
    return throw_range(env, "kind must be 0 (tun), 1 (raw6) or 2 (tun with vnet header)");
  if (fd < 0) return throw_range(env, "fd must be >= 0");
  if (batch < 1 || batch > APLUS_MAX_BATCH) return throw_range(env, "batch must be 1..1024");
  if (headroom < 0 || slot <= headroom) return throw_range(env, "slotSize must exceed headroom");
  if ((size_t)batch * (size_t)slot > slab_len) return throw_range(env, "slab is smaller than batch * slotSize");
  if ((size_t)batch > nlens) return throw_range(env, "lens is shorter than batch");
  if (kind == KIND_RAW6 && (srcs == NULL || dsts == NULL || nsrcs < 16 * (size_t)batch || ndsts < 16 * (size_t)batch))
    return throw_range(env, "raw6 needs srcs and dsts of 16 * batch bytes");

  poller *p = calloc(1, sizeof *p);
  poll_box *box = calloc(1, sizeof *box);
  if (p == NULL || box == NULL) goto oom;
  p->scratch = malloc(SCRATCH);
  if (p->scratch == NULL) goto oom;
  if (kind == KIND_TUN_VNET && (p->big = malloc((size_t)(slot - headroom) + VNET_BIG)) == NULL) goto oom;
  if (kind == KIND_RAW6) {
    p->msgs = calloc((size_t)batch, sizeof *p->msgs);
    p->iovs = calloc((size_t)batch, sizeof *p->iovs);
    p->names = calloc((size_t)batch, sizeof *p->names);
    p->ctrl = aligned_alloc(sizeof(size_t), (size_t)batch * RX_CTRL);
    if (p->msgs == NULL || p->iovs == NULL || p->names == NULL || p->ctrl == NULL) goto oom;
  }
  p->env = env;
  p->fd = fd;
  p->kind = kind;
  p->slab = slab;
  p->slot = (uint32_t)slot;
  p->headroom = (uint32_t)headroom;
  p->cap = (uint32_t)(slot - headroom);
  p->batch = (uint32_t)batch;
  p->lens = lens;
  p->srcs = srcs;
  p->dsts = dsts;
  p->st = st;
  for (int32_t i = 0; kind == KIND_RAW6 && i < batch; i++) {
    p->iovs[i].iov_base = slab + (size_t)i * (size_t)slot + (size_t)headroom;
    p->iovs[i].iov_len = p->cap;
    struct msghdr *h = &p->msgs[i].msg_hdr;
    h->msg_name = &p->names[i];
    h->msg_iov = &p->iovs[i];
    h->msg_iovlen = 1;
    h->msg_control = p->ctrl + (size_t)i * RX_CTRL;
  }
  napi_value resource, rname;
  if (napi_create_object(env, &resource) != napi_ok ||
      napi_create_string_utf8(env, kind == KIND_RAW6 ? "aplus.raw6" : "aplus.tun", NAPI_AUTO_LENGTH, &rname) != napi_ok ||
      keep(env, argv[2], &p->refs[R_SLAB]) != 0 || keep(env, argv[6], &p->refs[R_LENS]) != 0 ||
      keep(env, argv[7], &p->refs[R_SRCS]) != 0 || keep(env, argv[8], &p->refs[R_DSTS]) != 0 ||
      keep(env, argv[9], &p->refs[R_STATS]) != 0 || keep(env, argv[10], &p->refs[R_ONBATCH]) != 0 ||
      keep(env, argv[11], &p->refs[R_ONERROR]) != 0 || keep(env, resource, &p->refs[R_RESOURCE]) != 0 ||
      napi_async_init(env, resource, rname, &p->actx) != napi_ok)
    goto fail_js;
  uv_loop_t *loop;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) goto fail_js;
  int rc = uv_poll_init(loop, &p->handle, fd);
  if (rc != 0) {
    release_js(p);
    free_poller(p);
    free(box);
    return throw_errno(env, "uv_poll_init", -rc);
  }
  p->active = 1;
  p->uv_events = UV_READABLE | (kind == KIND_RAW6 ? UV_PRIORITIZED : 0);
  rc = uv_poll_start(&p->handle, p->uv_events, on_poll);
  if (rc != 0) {
    release_js(p);
    stop_uv(p); /* frees p in the close callback */
    free(box);
    return throw_errno(env, "uv_poll_start", -rc);
  }
  napi_add_env_cleanup_hook(env, env_cleanup, p);
  box->p = p;
  napi_value ext;
  if (napi_create_external(env, box, box_finalize, NULL, &ext) != napi_ok) {
    napi_remove_env_cleanup_hook(env, env_cleanup, p);
    release_js(p);
    stop_uv(p);
    free(box);
    return NULL;
  }
  return ext;
fail_js:
  release_js(p);
  free_poller(p);
  free(box);
  return NULL;
oom:
  if (p != NULL) free_poller(p);
  free(box);
  napi_throw_error(env, NULL, "pollStart: out of memory");
  return NULL;
}

/* pollStop(handle) -> true if it was running. Safe to call twice and from inside a callback. */
napi_value poll_stop(napi_env env, napi_callback_info info) {
  ARGS(1);
  poll_box *box = NULL;
  napi_valuetype t;
  if (napi_typeof(env, argv[0], &t) != napi_ok || t != napi_external ||
      napi_get_value_external(env, argv[0], (void **)&box) != napi_ok || box == NULL) {
    napi_throw_type_error(env, NULL, "argument handle must be a poll handle");
    return NULL;
  }
  poller *p = box->p;
  napi_value ret;
  napi_get_boolean(env, p != NULL, &ret);
  if (p == NULL) return ret;
  box->p = NULL;
  napi_remove_env_cleanup_hook(env, env_cleanup, p);
  stop_uv(p);
  if (p->in_cb == 0) release_js(p); /* else on_poll releases after the callback returns */
  return ret;
}
