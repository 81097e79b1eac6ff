#!/bin/sh
# provisioning/openwrt/install.sh DESTDIR BUNDLE_DIR: lays the smap package's files out under
# DESTDIR. The OpenWrt Makefile's Package/smap/install runs it with $(1); the tests run it into a
# temporary root and inspect the tree. BUNDLE_DIR holds smap.mjs, aplus_native.node,
# package.json and LICENSES.txt (npm run bundle, or the Makefile's cross build).

dest="$1"
bundle="$2"
files="$(dirname "$0")/files"
if [ -z "$dest" ] || [ -z "$bundle" ]; then
	echo "install.sh: usage: install.sh DESTDIR BUNDLE_DIR" >&2
	exit 2
fi
for f in smap.mjs aplus_native.node package.json LICENSES.txt; do
	if [ ! -f "$bundle/$f" ]; then
		echo "install.sh: $bundle/$f is missing (npm run bundle)" >&2
		exit 2
	fi
done
set -e
install -d -m 0755 "$dest/usr/lib/smap" "$dest/usr/bin" "$dest/usr/libexec/smap" \
	"$dest/etc/init.d" "$dest/etc/config" "$dest/etc/hotplug.d/iface"
# The agent's key pair goes here on first start: root only.
install -d -m 0700 "$dest/etc/smap"
install -m 0644 "$bundle/smap.mjs" "$bundle/package.json" "$bundle/LICENSES.txt" "$dest/usr/lib/smap/"
install -m 0755 "$bundle/aplus_native.node" "$dest/usr/lib/smap/"
install -m 0755 "$files/smap.sh" "$dest/usr/bin/smap"
install -m 0755 "$files/smap.init" "$dest/etc/init.d/smap"
install -m 0644 "$files/smap.config" "$dest/etc/config/smap"
install -m 0644 "$files/smap.hotplug" "$dest/etc/hotplug.d/iface/90-smap"
install -m 0755 "$files/dhcp-mtu" "$dest/usr/libexec/smap/dhcp-mtu"
