/*
 * gso.c's routines without a TUN, for unit tests: the same code the TUN reader and writer run,
 * returning what they would hand on as Buffers.
 *
 *   gsoSplit(vnetPacket, cap, max) -> Buffer[] | null   what the reader puts in its ring slots
 *   groCoalesce(slab, offsets, lens, count) -> Buffer[]  each one write(): vnet header + packet
 */
#include <stdlib.h>
#include <string.h>

#include "aplus.h"
#include "gso.h"

/* arr[i] = a Buffer copy of data[0..len); 0, or -1 with a pending exception. */
static int set_buffer(napi_env env, napi_value arr, uint32_t i, const void *data, size_t len) {
  napi_value b;
  void *copy;
  if (napi_create_buffer_copy(env, len, len == 0 ? "" : data, &copy, &b) != napi_ok) return -1;
  return napi_set_element(env, arr, i, b) == napi_ok ? 0 : -1;
}

napi_value gso_split(napi_env env, napi_callback_info info) {
  ARGS(3);
  uint8_t *in;
  size_t in_len;
  int32_t cap, max;
  if (arg_bytes(env, argv[0], "packet", &in, &in_len) != 0 || arg_int32(env, argv[1], "cap", &cap) != 0 ||
      arg_int32(env, argv[2], "max", &max) != 0)
    return NULL;
  if (in_len < VNET_HDR_LEN || cap < 1 || cap > 65535 || max < 1 || max > APLUS_MAX_BATCH)
    return throw_range(env, "gsoSplit: packet shorter than a vnet header, or cap/max out of range");
  vnet_hdr h;
  memcpy(&h, in, VNET_HDR_LEN);
  size_t len = in_len - VNET_HDR_LEN;
  uint8_t *pkt = malloc(len + 1), *slab = malloc((size_t)cap * (size_t)max);
  int32_t *lens = calloc((size_t)max, sizeof *lens);
  napi_value out = NULL;
  if (pkt == NULL || slab == NULL || lens == NULL) {
    napi_throw_error(env, NULL, "gsoSplit: out of memory");
    goto done;
  }
  memcpy(pkt, in + VNET_HDR_LEN, len);
  if (napi_create_array(env, &out) != napi_ok) goto done;
  /* As the reader does: at most `max` packets per call, the rest in the next ones. */
  uint32_t seg = 0, at = 0;
  do {
    int n = vnet_to_slots(&h, pkt, len, slab, (size_t)cap, 0, (size_t)cap, 0, (uint32_t)max, lens, &seg);
    if (n < 0) {
      napi_get_null(env, &out);
      goto done;
    }
    for (int i = 0; i < n && out != NULL; i++)
      if (set_buffer(env, out, at++, slab + (size_t)i * (size_t)cap, (size_t)lens[i]) != 0) out = NULL;
  } while (seg != 0 && out != NULL);
done:
  free(pkt);
  free(slab);
  free(lens);
  return out;
}

napi_value gro_coalesce(napi_env env, napi_callback_info info) {
  ARGS(4);
  uint8_t *slab;
  size_t slab_len, noffs, nlens;
  int32_t *offs, *lens, count;
  if (arg_bytes(env, argv[0], "slab", &slab, &slab_len) != 0 || arg_i32array(env, argv[1], "offsets", &offs, &noffs) != 0 ||
      arg_i32array(env, argv[2], "lens", &lens, &nlens) != 0 || arg_int32(env, argv[3], "count", &count) != 0)
    return NULL;
  if (count < 0 || count > APLUS_MAX_BATCH || (size_t)count > noffs || (size_t)count > nlens)
    return throw_range(env, "groCoalesce: count exceeds offsets/lens length or 1024");
  gro_item *items = calloc((size_t)count + 1, sizeof *items);
  int32_t *next = calloc((size_t)count + 1, sizeof *next);
  uint8_t hdr[GRO_HDR_ROOM];
  struct iovec iov[GRO_MAX_SEGS + 1];
  napi_value out = NULL;
  uint8_t *flat = NULL;
  if (items == NULL || next == NULL) {
    napi_throw_error(env, NULL, "groCoalesce: out of memory");
    goto done;
  }
  uint32_t bad = 0;
  int n = gro_plan(slab, slab_len, offs, lens, count, items, next, &bad);
  if (napi_create_array_with_length(env, (size_t)n, &out) != napi_ok) goto done;
  for (int k = 0; k < n; k++) {
    int niov = gro_iov(&items[k], slab, offs, lens, next, hdr, iov);
    size_t total = 0;
    for (int i = 0; i < niov; i++) total += iov[i].iov_len;
    free(flat);
    flat = malloc(total);
    if (flat == NULL) {
      napi_throw_error(env, NULL, "groCoalesce: out of memory");
      out = NULL;
      goto done;
    }
    size_t at = 0;
    for (int i = 0; i < niov; i++) {
      memcpy(flat + at, iov[i].iov_base, iov[i].iov_len);
      at += iov[i].iov_len;
    }
    if (set_buffer(env, out, (uint32_t)k, flat, total) != 0) {
      out = NULL;
      goto done;
    }
  }
done:
  free(flat);
  free(items);
  free(next);
  return out;
}
