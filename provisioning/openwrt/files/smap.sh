#!/bin/sh
# /usr/bin/smap: the agent's command line (one bundled file, the addon beside it).
exec node "${SMAP_LIB:-/usr/lib/smap}/smap.mjs" "$@"
