/*
 * aplus_native: TUN devices and raw IPv6 (next header 4) sockets for the user-space data plane.
 * N-API only (node_api.h) plus libuv's uv_poll. Linux only.
 *
 * Shared declarations of the translation units:
 *   addon.c     module init, argument helpers, errors, closeFd
 *   tun.c       tunOpen, tunWrite (with offloads: IFF_VNET_HDR, coalesced writes)
 *   gso.c       segmentation and coalescing for TUN offloads (pure; gso.h)
 *   raw6.c      raw6Open, raw6SetPmtuDisc, raw6SetDontFrag, pathMtu
 *   send.c      raw6Send (sendmmsg)
 *   raw4.c      raw4Open, raw4Send: IPv4 output in batches, the TUN as fallback
 *   poll.c      pollStart, pollStop: the batched receive loop
 *   errqueue.c  error-queue reports (poller.h is shared by poll.c and errqueue.c)
 *   sockopt.c   originalDst (SO_ORIGINAL_DST of a redirected TCP connection)
 *   gsotest.c   gsoSplit, groCoalesce: gso.c without a TUN, for unit tests
 */
#ifndef APLUS_NATIVE_H
#define APLUS_NATIVE_H

#include <stddef.h>
#include <stdint.h>
#include <node_api.h>

/*
 * Counters, one Float64Array per port. The TS side mirrors these indexes in
 * common/native/stats.ts; keep both in the same order.
 */
enum {
  ST_RX_PACKETS = 0,        /* packets handed to JS */
  ST_RX_BYTES = 1,          /* bytes handed to JS (inner packet bytes) */
  ST_RX_BATCHES = 2,        /* onBatch calls */
  ST_RX_ERRORS = 3,         /* read/recvmmsg failures other than EAGAIN (pending socket errors) */
  ST_RX_TRUNCATED = 4,      /* packets longer than slotSize - headroom, dropped */
  ST_TX_PACKETS = 5,        /* packets accepted by the kernel */
  ST_TX_BYTES = 6,          /* bytes accepted by the kernel */
  ST_TX_ERRORS = 7,         /* packets dropped on a send error other than the two below */
  ST_TX_EAGAIN = 8,         /* packets dropped because the socket/queue was full (EAGAIN, ENOBUFS) */
  ST_TX_EMSGSIZE = 9,       /* packets dropped with EMSGSIZE (over the path MTU with DF / 'do') */
  ST_ERRQUEUE = 10,         /* messages read from the socket error queue (ICMPv6 errors, local errors) */
  ST_RX_WAKEUPS = 11,       /* readable events handled */
  ST_TX_BATCHES = 12,       /* send calls (tunWrite / raw6Send) */
  ST_TX_DEFERRED = 13,      /* a send reported an earlier asynchronous socket error; the packet was retried */
  ST_POLL_RESTARTS = 14,    /* libuv stopped the poll on POLLERR and it was restarted */
  ST_RX_SYSCALLS = 15,      /* read/readv/recvmmsg calls */
  ST_TX_SYSCALLS = 16,      /* write/sendmmsg calls */
  ST_TX_FALLBACK = 17,      /* raw IPv4 output refused a packet; written to the TUN instead */
  ST_GSO_RX = 18,           /* super-packets read from a TUN with offloads and cut into segments */
  ST_GSO_TX = 19,           /* super-packets of coalesced TCP segments written to a TUN */
  ST_GSO_BAD = 20,          /* packets read with a vnet header that could not be cut or completed, dropped */
  ST_COUNT = 21
};

#define APLUS_MAX_BATCH 1024 /* UIO_MAXIOV: the most sendmmsg/recvmmsg take in one call */
#define APLUS_SEND_CTRL 64   /* per-message control buffer (one IPV6_PKTINFO) */

/* Per-environment scratch for raw6Send, allocated once at module init. */
typedef struct addon_state addon_state;
addon_state *addon_get_state(napi_env env);

/* Argument helpers: return 0 on success, -1 after throwing a TypeError/RangeError. */
int arg_int32(napi_env env, napi_value v, const char *name, int32_t *out);
int arg_bytes(napi_env env, napi_value v, const char *name, uint8_t **data, size_t *len);
int arg_bytes_or_null(napi_env env, napi_value v, const char *name, uint8_t **data, size_t *len);
int arg_i32array(napi_env env, napi_value v, const char *name, int32_t **data, size_t *len);
int arg_f64array(napi_env env, napi_value v, const char *name, double **data, size_t *len);
int arg_stats(napi_env env, napi_value v, double **stats);
int is_nullish(napi_env env, napi_value v);

/* Throw Error(`${what}: ${strerror(err)}`) with an `errno` property; returns NULL for `return`. */
napi_value throw_errno(napi_env env, const char *what, int err);
napi_value throw_range(napi_env env, const char *msg);
napi_value make_int(napi_env env, int64_t n);

/* Exports of each unit, registered in addon.c. */
napi_value tun_open(napi_env env, napi_callback_info info);
napi_value tun_write(napi_env env, napi_callback_info info);
napi_value raw6_open(napi_env env, napi_callback_info info);
napi_value raw6_set_pmtu_disc(napi_env env, napi_callback_info info);
napi_value raw6_set_dont_frag(napi_env env, napi_callback_info info);
napi_value path_mtu(napi_env env, napi_callback_info info);
napi_value raw6_send(napi_env env, napi_callback_info info);
napi_value raw4_open(napi_env env, napi_callback_info info);
napi_value raw4_send(napi_env env, napi_callback_info info);
napi_value poll_start(napi_env env, napi_callback_info info);
napi_value poll_stop(napi_env env, napi_callback_info info);
napi_value original_dst(napi_env env, napi_callback_info info);
napi_value gso_split(napi_env env, napi_callback_info info);
napi_value gro_coalesce(napi_env env, napi_callback_info info);
napi_value advise_huge_pages(napi_env env, napi_callback_info info);

#define ARGS(n)                                                                 \
  size_t argc = (n);                                                            \
  napi_value argv[(n) > 0 ? (n) : 1];                                           \
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL; \
  if (argc < (n)) return throw_range(env, "missing arguments")

#endif
