/* Module init, argument helpers, errors, closeFd. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aplus.h"
#include "state.h"

napi_value throw_errno(napi_env env, const char *what, int err) {
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  napi_value m, e, n;
  if (napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &m) == napi_ok &&
      napi_create_error(env, NULL, m, &e) == napi_ok &&
      napi_create_int32(env, err, &n) == napi_ok) {
    napi_set_named_property(env, e, "errno", n);
    napi_throw(env, e);
  }
  return NULL;
}

napi_value throw_range(napi_env env, const char *msg) {
  napi_throw_range_error(env, NULL, msg);
  return NULL;
}

static int throw_arg(napi_env env, const char *name, const char *want) {
  char msg[160];
  snprintf(msg, sizeof msg, "argument %s must be %s", name, want);
  napi_throw_type_error(env, NULL, msg);
  return -1;
}

napi_value make_int(napi_env env, int64_t n) {
  napi_value v;
  if (napi_create_int64(env, n, &v) != napi_ok) return NULL;
  return v;
}

int is_nullish(napi_env env, napi_value v) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok) return 0;
  return t == napi_null || t == napi_undefined;
}

int arg_int32(napi_env env, napi_value v, const char *name, int32_t *out) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_number) return throw_arg(env, name, "a number");
  if (napi_get_value_int32(env, v, out) != napi_ok) return throw_arg(env, name, "a number");
  return 0;
}

static int typed(napi_env env, napi_value v, napi_typedarray_type want, void **data, size_t *len) {
  bool ok = false;
  if (napi_is_typedarray(env, v, &ok) != napi_ok || !ok) return -1;
  napi_typedarray_type type;
  napi_value ab;
  size_t off;
  if (napi_get_typedarray_info(env, v, &type, len, data, &ab, &off) != napi_ok) return -1;
  if (type != want) return -1;
  if (*len > 0 && *data == NULL) return -1;
  return 0;
}

int arg_bytes(napi_env env, napi_value v, const char *name, uint8_t **data, size_t *len) {
  void *d;
  if (typed(env, v, napi_uint8_array, &d, len) != 0) return throw_arg(env, name, "a Buffer");
  *data = d;
  return 0;
}

int arg_bytes_or_null(napi_env env, napi_value v, const char *name, uint8_t **data, size_t *len) {
  if (is_nullish(env, v)) {
    *data = NULL;
    *len = 0;
    return 0;
  }
  return arg_bytes(env, v, name, data, len);
}

int arg_i32array(napi_env env, napi_value v, const char *name, int32_t **data, size_t *len) {
  void *d;
  if (typed(env, v, napi_int32_array, &d, len) != 0) return throw_arg(env, name, "an Int32Array");
  *data = d;
  return 0;
}

int arg_f64array(napi_env env, napi_value v, const char *name, double **data, size_t *len) {
  void *d;
  if (typed(env, v, napi_float64_array, &d, len) != 0) return throw_arg(env, name, "a Float64Array");
  *data = d;
  return 0;
}

int arg_stats(napi_env env, napi_value v, double **stats) {
  size_t n;
  if (arg_f64array(env, v, "stats", stats, &n) != 0) return -1;
  if (n < ST_COUNT) {
    throw_range(env, "stats Float64Array is shorter than the counter table");
    return -1;
  }
  return 0;
}

/* closeFd(fd): close a TUN or socket fd (after pollStop). */
static napi_value close_fd(napi_env env, napi_callback_info info) {
  ARGS(1);
  int32_t fd;
  if (arg_int32(env, argv[0], "fd", &fd) != 0) return NULL;
  if (fd < 0) return throw_range(env, "fd must be >= 0");
  if (close(fd) != 0 && errno != EINTR) return throw_errno(env, "close", errno);
  return NULL;
}

addon_state *addon_get_state(napi_env env) {
  void *d = NULL;
  if (napi_get_instance_data(env, &d) != napi_ok) return NULL;
  return d;
}

static void state_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  free(data);
}

static napi_value init(napi_env env, napi_value exports) {
  addon_state *st = calloc(1, sizeof *st);
  if (st == NULL || napi_set_instance_data(env, st, state_finalize, NULL) != napi_ok) {
    free(st);
    napi_throw_error(env, NULL, "aplus_native: out of memory");
    return NULL;
  }
  const napi_property_descriptor props[] = {
      {"tunOpen", NULL, tun_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"tunWrite", NULL, tun_write, NULL, NULL, NULL, napi_enumerable, NULL},
      {"raw6Open", NULL, raw6_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"raw6SetPmtuDisc", NULL, raw6_set_pmtu_disc, NULL, NULL, NULL, napi_enumerable, NULL},
      {"raw6SetDontFrag", NULL, raw6_set_dont_frag, NULL, NULL, NULL, napi_enumerable, NULL},
      {"pathMtu", NULL, path_mtu, NULL, NULL, NULL, napi_enumerable, NULL},
      {"raw6Send", NULL, raw6_send, NULL, NULL, NULL, napi_enumerable, NULL},
      {"raw4Open", NULL, raw4_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"raw4Send", NULL, raw4_send, NULL, NULL, NULL, napi_enumerable, NULL},
      {"pollStart", NULL, poll_start, NULL, NULL, NULL, napi_enumerable, NULL},
      {"pollStop", NULL, poll_stop, NULL, NULL, NULL, napi_enumerable, NULL},
      {"closeFd", NULL, close_fd, NULL, NULL, NULL, napi_enumerable, NULL},
      {"originalDst", NULL, original_dst, NULL, NULL, NULL, napi_enumerable, NULL},
      {"gsoSplit", NULL, gso_split, NULL, NULL, NULL, napi_enumerable, NULL},
      {"groCoalesce", NULL, gro_coalesce, NULL, NULL, NULL, napi_enumerable, NULL},
      {"adviseHugePages", NULL, advise_huge_pages, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
  napi_value n;
  if (napi_create_int32(env, ST_COUNT, &n) == napi_ok) napi_set_named_property(env, exports, "statsCount", n);
  if (napi_create_int32(env, APLUS_MAX_BATCH, &n) == napi_ok) napi_set_named_property(env, exports, "maxBatch", n);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
