/*
 * Small-packet UDP source for `npm run bench -- e2e` (not a product): compiled at bench time
 * with Debian's gcc into the lab's temp dir (bench/udpgen.ts). iperf3 sends one datagram per
 * syscall and tops out near 70 kpps here, below the paths it measures; this sends with
 * sendmmsg, 64 datagrams per call, so the source is not what limits the figure.
 *
 *   udpgen DST_IPV4 PORT PPS SECONDS PAYLOAD
 *
 * Paced in 1 ms ticks (it sleeps between ticks: on a 2-core host a spinning source would steal
 * the path's CPU); each tick sends what the elapsed time allows, so a late tick catches up in a
 * burst, as a NIC with interrupt coalescing delivers. Prints one JSON line:
 *   {"sent":N,"seconds":T,"errors":E}
 * Exits 2 with one line on bad arguments, 1 if the socket cannot be opened.
 * (No receiver: the bench counts arrivals with an nftables counter at the Internet host's
 * prerouting and drops them there, so no socket's overflow on a busy host counts as loss.)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define BATCH 64

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  struct sockaddr_in dst = {.sin_family = AF_INET};
  if (argc != 6 || inet_pton(AF_INET, argv[1], &dst.sin_addr) != 1) {
    fprintf(stderr, "udpgen: usage: udpgen DST_IPV4 PORT PPS SECONDS PAYLOAD\n");
    return 2;
  }
  long port = strtol(argv[2], NULL, 10), payload = strtol(argv[5], NULL, 10);
  double pps = strtod(argv[3], NULL), seconds = strtod(argv[4], NULL);
  if (port < 1 || port > 65535 || pps <= 0 || seconds <= 0 || payload < 1 || payload > 1472) {
    fprintf(stderr, "udpgen: PORT 1-65535, PPS > 0, SECONDS > 0, PAYLOAD 1-1472\n");
    return 2;
  }
  dst.sin_port = htons((unsigned short)port);
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  /* not connected: an ICMP error from the far end must not fail the next send */
  if (fd < 0) {
    fprintf(stderr, "udpgen: socket to %s:%ld: %s\n", argv[1], port, strerror(errno));
    return 1;
  }
  static char buf[1472];
  struct iovec iov = {.iov_base = buf, .iov_len = (size_t)payload};
  struct mmsghdr msgs[BATCH];
  memset(msgs, 0, sizeof msgs);
  for (int i = 0; i < BATCH; i++) {
    msgs[i].msg_hdr.msg_iov = &iov;
    msgs[i].msg_hdr.msg_iovlen = 1;
    msgs[i].msg_hdr.msg_name = &dst;
    msgs[i].msg_hdr.msg_namelen = sizeof dst;
  }
  unsigned long long sent = 0, errors = 0;
  double t0 = now(), end = t0 + seconds, t;
  const unsigned long long total = (unsigned long long)(pps * seconds);
  const struct timespec tick = {0, 1000000};
  while ((t = now()) < end) {
    unsigned long long due = (unsigned long long)((t - t0) * pps);
    if (due > total) due = total;
    while (sent < due) {
      unsigned long long want = due - sent;
      int n = sendmmsg(fd, msgs, want < BATCH ? (unsigned)want : BATCH, 0);
      if (n <= 0) {
        /* ENOBUFS and the like: count it, go on with the next tick */
        errors++;
        break;
      }
      sent += (unsigned long long)n;
    }
    nanosleep(&tick, NULL);
  }
  printf("{\"sent\":%llu,\"seconds\":%.6f,\"errors\":%llu}\n", sent, now() - t0, errors);
  return 0;
}
