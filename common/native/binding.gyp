{
  "targets": [
    {
      "target_name": "aplus_native",
      "sources": ["src/addon.c", "src/tun.c", "src/raw6.c", "src/send.c", "src/raw4.c", "src/poll.c", "src/errqueue.c", "src/sockopt.c", "src/gso.c", "src/gsotest.c", "src/hugepage.c"],
      "defines": ["NAPI_VERSION=8", "_GNU_SOURCE"],
      "cflags": ["-std=gnu11", "-O2", "-Wall", "-Wextra", "-fvisibility=hidden"]
    }
  ]
}
