/* adviseHugePages: ask for transparent huge pages under a big ArrayBuffer (madvise mode THP). */
#include <errno.h>
#include <stdint.h>
#include <sys/mman.h>

#include "aplus.h"

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25 /* Linux 6.1; older libc headers lack it */
#endif

#define HUGE_PAGE ((uintptr_t)2 << 20) /* x86-64 and arm64 (4 KiB base pages): one PMD */

/* adviseHugePages(buf: ArrayBuffer, collapse: boolean) -> bytes advised.
 * madvise(MADV_HUGEPAGE) on the 2 MiB-aligned part of the buffer's memory (only whole huge pages
 * can be mapped so; a buffer smaller than that part is left alone and 0 returned). Pages not yet
 * touched then fault in as huge pages: call it right after allocating. `collapse` also asks for
 * MADV_COLLAPSE, which rebuilds pages already touched (a filled table) into huge pages now;
 * its failure (no huge page free, kernel without it) is not an error: the advice stays. */
napi_value advise_huge_pages(napi_env env, napi_callback_info info) {
  ARGS(2);
  bool is_ab = false;
  void *data = NULL;
  size_t len = 0;
  if (napi_is_arraybuffer(env, argv[0], &is_ab) != napi_ok || !is_ab) {
    napi_throw_type_error(env, NULL, "argument buf must be an ArrayBuffer");
    return NULL;
  }
  if (napi_get_arraybuffer_info(env, argv[0], &data, &len) != napi_ok) return NULL;
  bool collapse = false;
  if (!is_nullish(env, argv[1]) && napi_get_value_bool(env, argv[1], &collapse) != napi_ok) {
    napi_throw_type_error(env, NULL, "argument collapse must be a boolean");
    return NULL;
  }
  uintptr_t start = ((uintptr_t)data + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
  uintptr_t end = ((uintptr_t)data + len) & ~(HUGE_PAGE - 1);
  if (data == NULL || end <= start) return make_int(env, 0);
  if (madvise((void *)start, end - start, MADV_HUGEPAGE) != 0) return throw_errno(env, "madvise MADV_HUGEPAGE", errno);
  if (collapse) (void)madvise((void *)start, end - start, MADV_COLLAPSE);
  return make_int(env, (int64_t)(end - start));
}
