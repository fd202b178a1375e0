#!/usr/bin/env bash
# install.sh: install every Debian package finemask needs, then configure and
# build it (Release) into ./build. Run as root on Debian 12.
#   ./install.sh            packages + build
#   ./install.sh --deps     packages only
set -euo pipefail
cd "$(dirname "$0")"

PACKAGES=(
  # toolchain
  build-essential cmake pkg-config git clang libclang-rt-14-dev
  # MPI, BLIS, ScaLAPACK
  openmpi-bin libopenmpi-dev libblis-openmp-dev libscalapack-openmpi-dev
  # maintained libraries: tests, JSON, INI, Unicode, CRC-32C, random numbers
  libcmocka-dev libjansson-dev libinih-dev libutf8proc-dev libisal-dev librandom123-dev
  # reference implementation for cross-checks and the benchmark
  python3 python3-numpy python3-torch
  # report figures
  gnuplot-nox
  # tests: the portable build run on an emulated x86-64-v2 CPU
  qemu-user
  # one-node Slurm cluster for the sbatch scripts' tests; Slurm's pmix plugin
  # loads libpmix.so, which only the -dev package ships
  slurm-wlm munge libpmix-dev
)

if [ "$(id -u)" -ne 0 ]; then
  SUDO=sudo
else
  SUDO=
fi
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install.sh: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
[ "${1:-}" = "--deps" ] && exit 0

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j "$(nproc)"
echo "install.sh: built build/finemask"
