/*
 * TUN offloads (IFF_VNET_HDR): every read and write of the TUN carries a 10-byte virtio_net_hdr.
 * gso.c holds the byte work, pure (no syscalls), shared by the TUN reader (poll.c), the TUN
 * writer (tun.c) and the test exports (addon.c):
 *
 *   vnet_to_slots  a packet read from the TUN -> plain IPv4 packets in ring slots: a GSO
 *                  super-packet (TCPV4, UDP_L4) is cut into segments of gso_size, each with its
 *                  own IPv4 id, total length, header checksum, TCP seq and flags (CWR on the first
 *                  only, FIN/PSH on the last only) or UDP length, and a full L4 checksum; a packet
 *                  with a partial checksum (NEEDS_CSUM) gets it completed.
 *   gro_plan       a batch toward the TUN -> items: runs of TCP segments of one flow that can be
 *                  one super-packet (same addresses, ports, TOS, TTL, DF, ack, window, options;
 *                  consecutive IPv4 ids; contiguous seq; ACK with PSH only on the last; equal
 *                  payloads but a shorter last; checksums verified), or single packets.
 *   gro_iov        one item -> the iovec of its write(): a vnet header (TCPV4, NEEDS_CSUM, the
 *                  pseudo-header sum in the TCP checksum field) and the first packet's headers,
 *                  then every member's payload where it lies; a single packet gets a zero header.
 *
 * IPv4 only: the TUN carries IPv4 (the SMAP routes nothing else into it); an IPv6 super-packet
 * is refused (-1) and counted by the caller.
 */
#ifndef APLUS_GSO_H
#define APLUS_GSO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define VNET_HDR_LEN 10
#define VNET_F_NEEDS_CSUM 1
#define VNET_GSO_NONE 0
#define VNET_GSO_TCPV4 1
#define VNET_GSO_UDP_L4 5
#define VNET_GSO_ECN 0x80

/* struct virtio_net_hdr in the host's byte order (the TUN's default, no TUNSETVNETLE/BE). */
typedef struct {
  uint8_t flags;
  uint8_t gso_type;
  uint16_t hdr_len;
  uint16_t gso_size;
  uint16_t csum_start;
  uint16_t csum_offset;
} vnet_hdr;

#define GRO_MAX_SEGS 64  /* members of one super-packet (and iovecs: one more for the headers) */
#define GRO_HDR_ROOM (VNET_HDR_LEN + 60 + 60)
#define GRO_SCAN 16      /* open items searched back for a packet's flow */

typedef struct {
  int32_t first, last; /* packet indexes; members are linked through next[] */
  int32_t n;           /* members */
  uint32_t payload;    /* payload bytes of all members */
  uint32_t next_seq;
  uint16_t mss;        /* payload of the first member */
  uint16_t hlen;       /* IPv4 + TCP header bytes */
  uint8_t open;        /* more members may join */
  uint8_t tcp;         /* the first member is a candidate (flow key valid) */
} gro_item;

/* Ones' complement sum of a buffer into a 64-bit accumulator, and its 16-bit fold. */
uint64_t csum_add(const uint8_t *p, size_t n, uint64_t sum);
uint16_t csum_fold(uint64_t sum);

/*
 * A packet read from the TUN (pkt[0..len), contiguous) -> plain packets at
 * slab + (first + i) * slot + headroom, lens[first + i], for i < return value; at most `max`
 * packets (max >= 1), each <= cap bytes. A super-packet with more segments than `max` is cut over
 * several calls: *seg is the segment to start at (0 the first time) and comes back as the next
 * one, or 0 when the packet is done. Returns the count, or -1 (not IPv4 GSO we can cut, headers
 * inconsistent, a segment over cap), which only a first call (*seg == 0) returns. A non-GSO
 * packet is copied unless it already lies at its slot (pkt == that slot).
 */
int vnet_to_slots(const vnet_hdr *h, uint8_t *pkt, size_t len, uint8_t *slab, size_t slot, size_t headroom,
                  size_t cap, uint32_t first, uint32_t max, int32_t *lens, uint32_t *seg);

/* Completes a partial checksum (NEEDS_CSUM) in place; 0, or -1 if csum_start/offset lie outside. */
int vnet_complete_csum(const vnet_hdr *h, uint8_t *pkt, size_t len);

/*
 * Plans a batch toward the TUN. items must hold `count` entries, next[] `count` ints. Packets
 * with bad offsets (outside the slab, len <= 0) are skipped and counted in *bad. Returns the
 * number of items, in the order of their first packets (a flow's packets keep their order).
 */
int gro_plan(const uint8_t *slab, size_t slab_len, const int32_t *offs, const int32_t *lens, int32_t count,
             gro_item *items, int32_t *next, uint32_t *bad);

/* The iovec of one item's write(): hdr is GRO_HDR_ROOM bytes of scratch; iov GRO_MAX_SEGS + 1. */
int gro_iov(const gro_item *it, const uint8_t *slab, const int32_t *offs, const int32_t *lens, const int32_t *next,
            uint8_t *hdr, struct iovec *iov);

/* Raise the TTL of the IPv4 header gro_iov put after the vnet header by one (not past 255). */
void gro_bump_ttl(uint8_t *hdr);

#endif
