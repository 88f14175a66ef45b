#!/usr/bin/env bash
# Builds the static, HTTP(S)-only libcurl that eni-agent links, and prints its install prefix.
#
# Debian's libcurl.so carries LDAP, RTMP, SSH, Kerberos, IDN, PSL, brotli and zstd, and through
# them GnuTLS, nettle, p11-kit and some twenty more shared libraries. The agent speaks HTTP(S) to
# the API server, IMDS and EC2 and uses none of them, yet each one costs resident pages (about
# 2 MiB of the agent's RSS in all; README, "Memory"). So the agent links a libcurl built from the
# same Debian source package as the system's libcurl (same version, same security patches), with
# HTTP and HTTPS only, OpenSSL (the system's shared libssl), zlib, and nghttp2: HTTP/2 keeps all of
# a node's API-server requests on one multiplexed connection.
#
# The result is cached under $HOME/.cache/eni-agent/curl/, keyed by the source version and this
# script's contents, and reused when present. Needs root (or sudo) the first time: it adds a
# deb-src entry next to the system's deb entries and fetches the source with apt.
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(dpkg-query -W -f='${source:Version}' libcurl4-openssl-dev 2>/dev/null || true)
for dev in libcurl4-openssl-dev libssl-dev zlib1g-dev libnghttp2-dev dpkg-dev; do
  if ! dpkg-query -W -f='${Status}' "$dev" 2>/dev/null | grep -q "install ok installed"; then
    echo "lean-curl: $dev is not installed; run scripts/setup.sh" >&2
    exit 1
  fi
done
key="$version-$(sha256sum "$0" | cut -c1-12)"
cache=${XDG_CACHE_HOME:-$HOME/.cache}/eni-agent/curl
prefix=$cache/$key
if [ -f "$prefix/lib/libcurl.a" ] && [ -f "$prefix/lib/cmake/CURL/CURLConfig.cmake" ]; then
  echo "$prefix"
  exit 0
fi

SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
src_list=/etc/apt/sources.list.d/eni-agent-src.sources
if ! apt-get source --print-uris "curl=$version" >/dev/null 2>&1; then
  echo "lean-curl: adding deb-src entries for the system's Debian archives ($src_list)" >&2
  {
    for f in /etc/apt/sources.list.d/*.sources; do
      [ "$f" = "$src_list" ] || [ ! -f "$f" ] && continue
      sed -n 's/^Types:.*\bdeb\b.*$/Types: deb-src/;p' "$f"
      echo
    done
  } | $SUDO tee "$src_list.tmp" >/dev/null
  if [ -f /etc/apt/sources.list ]; then
    # One-line format: "deb [opts] uri suite comps" becomes a deb-src entry in deb822 form.
    awk '$1 == "deb" { i = 2; if ($2 ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
           printf "Types: deb-src\nURIs: %s\nSuites: %s\nComponents:", $i, $(i + 1)
           for (j = i + 2; j <= NF; j++) printf " %s", $j
           printf "\n\n" }' /etc/apt/sources.list | $SUDO tee -a "$src_list.tmp" >/dev/null
  fi
  $SUDO mv "$src_list.tmp" "$src_list"
  $SUDO apt-get update -qq
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "lean-curl: building libcurl $version (HTTP/HTTPS only, static) into $prefix" >&2
(cd "$work" && apt-get source --download-only -qq "curl=$version" >/dev/null 2>&1) || {
  echo "lean-curl: apt-get source curl=$version failed; is a deb-src entry for the Debian archive configured?" >&2
  exit 1
}
# apt has checked the files against the archive's signed index; dpkg-source only unpacks and patches.
dpkg-source -x "$work"/curl_*.dsc "$work/src" >"$work/unpack.log" 2>&1 || { cat "$work/unpack.log" >&2; exit 1; }
cmake -S "$work/src" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DBUILD_SHARED_LIBS=OFF -DCMAKE_POSITION_INDEPENDENT_CODE=ON -DBUILD_CURL_EXE=OFF -DBUILD_TESTING=OFF \
  -DHTTP_ONLY=ON -DCURL_DISABLE_LDAP=ON -DCURL_DISABLE_LDAPS=ON \
  -DCURL_USE_OPENSSL=ON -DCURL_ZLIB=ON -DENABLE_THREADED_RESOLVER=ON \
  -DUSE_NGHTTP2=ON -DUSE_LIBRTMP=OFF -DCURL_USE_LIBSSH2=OFF -DCURL_USE_GSSAPI=OFF -DUSE_LIBIDN2=OFF \
  -DCURL_BROTLI=OFF -DCURL_ZSTD=OFF \
  -DCURL_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt -DCURL_CA_PATH=/etc/ssl/certs \
  -DCMAKE_INSTALL_PREFIX="$work/prefix" >"$work/configure.log" 2>&1 ||
  { tail -20 "$work/configure.log" >&2; exit 1; }
cmake --build "$work/build" -j "$(nproc)" >"$work/build.log" 2>&1 || { tail -20 "$work/build.log" >&2; exit 1; }
cmake --install "$work/build" >/dev/null
mkdir -p "$cache"
rm -rf "$prefix"
mv "$work/prefix" "$prefix"
echo "$prefix"
