/* The poller shared by poll.c (receive loop, start/stop) and errqueue.c (error reports). */
#ifndef APLUS_POLLER_H
#define APLUS_POLLER_H

#include <uv.h>

#include "aplus.h"

#define KIND_TUN 0
#define KIND_RAW6 1
#define KIND_TUN_VNET 2 /* a TUN with offloads: a vnet header before each packet (gso.c) */
#define MAX_ROUNDS 8         /* full batches per readable event */
#define MAX_ERRQ 256         /* error-queue messages per event */
#define MAX_SOCK_ERRORS 16   /* pending socket errors consumed per event */
#define SCRATCH 65536        /* TUN overflow iovec (truncation detection) and error payloads */
#define RX_CTRL 128          /* per-message control buffer on receive */
#define VNET_BIG 65536       /* KIND_TUN_VNET: room for a super-packet beyond its slot */

typedef struct poller {
  uv_poll_t handle; /* first: the uv callbacks cast back */
  napi_env env;
  int fd, kind, active, in_cb, js_released, uv_events;
  uint8_t *slab;
  uint32_t slot, headroom, batch, cap;
  int32_t *lens;
  uint8_t *srcs, *dsts;
  double *st;
  napi_ref refs[8]; /* slab, lens, srcs, dsts, stats, onBatch, onError, resource */
  napi_async_context actx;
  struct mmsghdr *msgs;
  struct iovec *iovs;
  struct sockaddr_in6 *names;
  uint8_t *ctrl;
  uint8_t *scratch;
  uint8_t *big; /* KIND_TUN_VNET: cap + VNET_BIG bytes, a super-packet made contiguous */
} poller;

enum { R_SLAB, R_LENS, R_SRCS, R_DSTS, R_STATS, R_ONBATCH, R_ONERROR, R_RESOURCE };

typedef struct { poller *p; } poll_box; /* what JS holds; outlives the poller */

/* Calls a JS function with the poller's async context; a throw becomes uncaughtException. -1 then. */
int call_js(poller *p, int which, size_t argc, napi_value *argv);
/* Reads the error queue until EAGAIN (at most MAX_ERRQ), one onError(report) per message. */
void drain_errqueue(poller *p);
/* Builds {origin, errno, type, code, info, dst, offender, payload} and calls onError. */
struct sock_extended_err;
int report(poller *p, const char *origin, const struct sock_extended_err *ee, napi_value dst,
           napi_value offender, const uint8_t *payload, size_t plen, int err);

#endif
