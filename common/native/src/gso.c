/* TUN offloads: segmentation of what the TUN gives, coalescing of what it takes. See gso.h. */
#include <arpa/inet.h>
#include <string.h>

#include "gso.h"

#define TCP_FIN 0x01
#define TCP_PSH 0x08
#define TCP_ACK 0x10
#define TCP_CWR 0x80
#define PROTO_TCP 6
#define PROTO_UDP 17

static inline uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline uint32_t rd32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }
static inline void wr16(uint8_t *p, uint32_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static inline void wr32(uint8_t *p, uint32_t v) { p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v; }

/*
 * Sums native 32-bit words (memcpy: any alignment). A ones' complement sum does not depend on
 * the byte order as long as every term is read the same way, so the folded result stored with
 * memcpy is the checksum in network order (RFC 1071 §2(B)).
 */
uint64_t csum_add(const uint8_t *p, size_t n, uint64_t sum) {
  while (n >= 8) {
    uint32_t a, b;
    memcpy(&a, p, 4);
    memcpy(&b, p + 4, 4);
    sum += (uint64_t)a + b;
    p += 8;
    n -= 8;
  }
  if (n >= 4) {
    uint32_t a;
    memcpy(&a, p, 4);
    sum += a;
    p += 4;
    n -= 4;
  }
  if (n >= 2) {
    uint16_t a;
    memcpy(&a, p, 2);
    sum += a;
    p += 2;
    n -= 2;
  }
  if (n == 1) {
    uint8_t last[2] = {p[0], 0};
    uint16_t a;
    memcpy(&a, last, 2);
    sum += a;
  }
  return sum;
}

uint16_t csum_fold(uint64_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return (uint16_t)sum;
}

static inline void put_sum(uint8_t *field, uint16_t v) { memcpy(field, &v, 2); }

/* The IPv4 pseudo header (RFC 793 §3.1, RFC 768) of an L4 part of l4len bytes. */
static uint64_t pseudo4(const uint8_t *ip, uint8_t proto, uint32_t l4len) {
  return csum_add(ip + 12, 8, 0) + htons(proto) + htons((uint16_t)l4len);
}

static void ip_csum(uint8_t *ip, size_t ihl) {
  ip[10] = ip[11] = 0;
  put_sum(ip + 10, (uint16_t)~csum_fold(csum_add(ip, ihl, 0)));
}

int vnet_complete_csum(const vnet_hdr *h, uint8_t *pkt, size_t len) {
  if (!(h->flags & VNET_F_NEEDS_CSUM)) return 0;
  size_t start = h->csum_start, field = start + h->csum_offset;
  if (field + 2 > len) return -1;
  /* The field holds the pseudo-header sum; the sum from csum_start over it completes it. */
  uint16_t c = (uint16_t)~csum_fold(csum_add(pkt + start, len - start, 0));
  if (c == 0 && h->csum_offset == 6) c = 0xffff; /* UDP: 0 means "no checksum" (RFC 768) */
  put_sum(pkt + field, c);
  return 0;
}

int vnet_to_slots(const vnet_hdr *h, uint8_t *pkt, size_t len, uint8_t *slab, size_t slot, size_t headroom,
                  size_t cap, uint32_t first, uint32_t max, int32_t *lens, uint32_t *seg) {
  uint8_t *dst0 = slab + (size_t)first * slot + headroom;
  if (max < 1) return -1;
  if (h->gso_type == VNET_GSO_NONE) {
    *seg = 0;
    if (len > cap) return -1;
    if (pkt != dst0) memmove(dst0, pkt, len);
    if (vnet_complete_csum(h, dst0, len) != 0) return -1;
    lens[first] = (int32_t)len;
    return 1;
  }
  int type = h->gso_type & ~VNET_GSO_ECN;
  if ((type != VNET_GSO_TCPV4 && type != VNET_GSO_UDP_L4) || len < 20 || (pkt[0] >> 4) != 4) return -1;
  size_t ihl = (size_t)(pkt[0] & 15) * 4;
  if (ihl < 20 || ihl > len || (rd16(pkt + 6) & 0x3fff) != 0) return -1; /* a fragment is never GSO */
  uint8_t proto = pkt[9];
  size_t hlen;
  if (type == VNET_GSO_TCPV4) {
    if (proto != PROTO_TCP || ihl + 20 > len) return -1;
    size_t thl = (size_t)(pkt[ihl + 12] >> 4) * 4;
    if (thl < 20 || ihl + thl > len) return -1;
    hlen = ihl + thl;
  } else {
    if (proto != PROTO_UDP || ihl + 8 > len) return -1;
    hlen = ihl + 8;
  }
  size_t payload = len - hlen, mss = h->gso_size;
  if (mss == 0) return -1;
  size_t nseg = payload == 0 ? 1 : (payload + mss - 1) / mss;
  if (hlen + (nseg == 1 ? payload : mss) > cap || *seg >= nseg) return -1;
  size_t from = *seg, to = nseg - from > max ? from + max : nseg;
  *seg = to < nseg ? (uint32_t)to : 0;
  uint16_t id0 = rd16(pkt + 4);
  uint32_t seq0 = type == VNET_GSO_TCPV4 ? rd32(pkt + ihl + 4) : 0;
  uint8_t flags0 = type == VNET_GSO_TCPV4 ? pkt[ihl + 13] : 0;
  for (size_t i = from; i < to; i++) {
    uint8_t *d = slab + (first + i - from) * slot + headroom;
    size_t pl = payload - i * mss < mss ? payload - i * mss : mss;
    memcpy(d, pkt, hlen);
    memcpy(d + hlen, pkt + hlen + i * mss, pl);
    size_t tot = hlen + pl, l4len = tot - ihl;
    wr16(d + 2, (uint32_t)tot);
    wr16(d + 4, (uint32_t)(id0 + i)); /* as the kernel's own segmentation: one id per segment */
    ip_csum(d, ihl);
    uint8_t *l4 = d + ihl;
    size_t csum_at;
    if (type == VNET_GSO_TCPV4) {
      wr32(l4 + 4, (uint32_t)(seq0 + i * mss));
      uint8_t f = flags0;
      if (i > 0) f &= (uint8_t)~TCP_CWR;
      if (i + 1 < nseg) f &= (uint8_t)~(TCP_FIN | TCP_PSH);
      l4[13] = f;
      csum_at = 16;
    } else {
      wr16(l4 + 4, (uint32_t)l4len);
      csum_at = 6;
    }
    l4[csum_at] = l4[csum_at + 1] = 0;
    uint16_t c = (uint16_t)~csum_fold(csum_add(l4, l4len, pseudo4(d, proto, (uint32_t)l4len)));
    if (c == 0 && type == VNET_GSO_UDP_L4) c = 0xffff;
    put_sum(l4 + csum_at, c);
    lens[first + i - from] = (int32_t)tot;
  }
  return (int)(to - from);
}

/* ---- coalescing toward the TUN ---- */

/* Flow key present: IPv4 TCP, not a non-first fragment, ports inside. */
static int tcp_flow(const uint8_t *p, int32_t len) {
  if (len < 20 || (p[0] >> 4) != 4 || p[9] != PROTO_TCP) return 0;
  int32_t ihl = (p[0] & 15) * 4;
  return ihl >= 20 && ihl + 4 <= len && (rd16(p + 6) & 0x1fff) == 0;
}

static int same_flow(const uint8_t *a, const uint8_t *b) {
  return memcmp(a + 12, b + 12, 8) == 0 && memcmp(a + (a[0] & 15) * 4, b + (b[0] & 15) * 4, 4) == 0;
}

/*
 * A segment that may be part of a super-packet: IPv4 without options, total length = len, not a
 * fragment, TCP with payload, flags ACK or ACK|PSH, both checksums right (once coalesced, the
 * receiver trusts the sum the kernel computes: a corrupted segment must not hide in it).
 */
static int candidate(const uint8_t *p, int32_t len, uint16_t *hlen, uint32_t *payload) {
  if (len < 40 || p[0] != 0x45 || p[9] != PROTO_TCP || rd16(p + 2) != (uint32_t)len || (rd16(p + 6) & 0x3fff) != 0) return 0;
  uint32_t thl = (uint32_t)(p[32] >> 4) * 4;
  if (thl < 20 || 20 + thl >= (uint32_t)len) return 0;
  if ((p[33] & (uint8_t)~TCP_PSH) != TCP_ACK) return 0;
  if (csum_fold(csum_add(p, 20, 0)) != 0xffff) return 0;
  if (csum_fold(csum_add(p + 20, (size_t)len - 20, pseudo4(p, PROTO_TCP, (uint32_t)len - 20))) != 0xffff) return 0;
  *hlen = (uint16_t)(20 + thl);
  *payload = (uint32_t)len - 20 - thl;
  return 1;
}

static int can_join(const gro_item *it, const uint8_t *f, const uint8_t *p, uint16_t hlen, uint32_t pl) {
  return it->n < GRO_MAX_SEGS && hlen == it->hlen && pl <= it->mss && it->hlen + it->payload + pl <= 65535 &&
         p[1] == f[1] && p[8] == f[8] && (p[6] & 0x40) == (f[6] & 0x40) &&  /* TOS, TTL, DF */
         rd16(p + 4) == (uint16_t)(rd16(f + 4) + it->n) &&                 /* consecutive ids */
         rd32(p + 24) == it->next_seq &&                                   /* contiguous */
         memcmp(p + 28, f + 28, 4) == 0 && p[32] == f[32] &&              /* ack, data offset */
         memcmp(p + 34, f + 34, 2) == 0 &&                                 /* window */
         memcmp(p + 40, f + 40, (size_t)hlen - 40) == 0;                   /* options */
}

int gro_plan(const uint8_t *slab, size_t slab_len, const int32_t *offs, const int32_t *lens, int32_t count,
             gro_item *items, int32_t *next, uint32_t *bad) {
  int n = 0;
  for (int32_t i = 0; i < count; i++) {
    next[i] = -1;
    int64_t off = offs[i], len = lens[i];
    if (off < 0 || len <= 0 || off + len > (int64_t)slab_len) {
      (*bad)++;
      continue;
    }
    const uint8_t *p = slab + off;
    uint16_t hlen = 0;
    uint32_t pl = 0;
    int cand = candidate(p, (int32_t)len, &hlen, &pl);
    int keyed = cand || tcp_flow(p, (int32_t)len);
    if (keyed) {
      for (int j = n - 1; j >= 0 && j >= n - GRO_SCAN; j--) {
        gro_item *it = &items[j];
        const uint8_t *f = slab + offs[it->first];
        if (!it->tcp || !same_flow(f, p)) continue;
        if (it->open && cand && can_join(it, f, p, hlen, pl)) {
          next[it->last] = i;
          it->last = i;
          it->n++;
          it->payload += pl;
          it->next_seq += pl;
          if (pl < it->mss || (p[33] & TCP_PSH)) it->open = 0;
          goto joined;
        }
        it->open = 0; /* this flow's next packet starts anew: its order is kept */
        break;
      }
    }
    {
      gro_item *it = &items[n++];
      it->first = it->last = i;
      it->n = 1;
      it->payload = pl;
      it->next_seq = cand ? rd32(p + 24) + pl : 0;
      it->mss = (uint16_t)pl;
      it->hlen = hlen;
      it->open = (uint8_t)(cand && !(p[33] & TCP_PSH));
      it->tcp = (uint8_t)keyed;
    }
  joined:;
  }
  return n;
}

int gro_iov(const gro_item *it, const uint8_t *slab, const int32_t *offs, const int32_t *lens, const int32_t *next,
            uint8_t *hdr, struct iovec *iov) {
  const uint8_t *f = slab + offs[it->first];
  if (it->n == 1) {
    memset(hdr, 0, VNET_HDR_LEN);
    iov[0] = (struct iovec){hdr, VNET_HDR_LEN};
    iov[1] = (struct iovec){(void *)f, (size_t)lens[it->first]};
    return 2;
  }
  vnet_hdr vh = {VNET_F_NEEDS_CSUM, VNET_GSO_TCPV4, it->hlen, it->mss, 20, 16};
  memcpy(hdr, &vh, VNET_HDR_LEN);
  uint8_t *ip = hdr + VNET_HDR_LEN;
  memcpy(ip, f, it->hlen);
  uint32_t tot = it->hlen + it->payload;
  wr16(ip + 2, tot);
  ip_csum(ip, 20);
  ip[33] |= slab[offs[it->last] + 33] & TCP_PSH;
  /* NEEDS_CSUM: the field holds the pseudo-header sum over the whole L4 length, not complemented. */
  ip[36] = ip[37] = 0;
  put_sum(ip + 36, csum_fold(pseudo4(ip, PROTO_TCP, tot - 20)));
  iov[0] = (struct iovec){hdr, (size_t)VNET_HDR_LEN + it->hlen};
  int k = 1;
  for (int32_t m = it->first; m >= 0; m = next[m])
    iov[k++] = (struct iovec){(void *)(slab + offs[m] + it->hlen), (size_t)(lens[m] - it->hlen)};
  return k;
}

void gro_bump_ttl(uint8_t *hdr) {
  uint8_t *ip = hdr + VNET_HDR_LEN;
  if (ip[8] == 255) return;
  ip[8]++;
  ip_csum(ip, (size_t)(ip[0] & 15) * 4);
}
