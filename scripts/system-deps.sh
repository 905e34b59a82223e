#!/bin/sh
# Debian packages the test suite needs (recorded speech, sox, a headless browser).
# Installs what is missing when run as root; otherwise says what to install and fails.
set -eu
packages="$*"
[ -n "$packages" ] || exit 0
missing=""
for p in $packages; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "Installing Debian packages:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
else
    echo "These Debian packages are needed:$missing" >&2
    echo "Install them with:  sudo apt-get install$missing" >&2
    exit 1
fi
