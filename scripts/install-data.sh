#!/usr/bin/env bash
# Install the offline data sources of rnnlab.data (issue 7). Nothing is downloaded at run
# time afterwards: every loader reads files that these packages put on disk.
#
#   Debian  dataset-fashion-mnist  Fashion-MNIST, 60k/10k 28x28 images as gzipped IDX files
#                                  in /usr/share/datasets/fashion-mnist/ (about 30 MB)
#   Debian  espeak-ng              (optional, --speech) speech synthesiser, to make WAV files
#                                  for rnnlab.data.speech.wav_folder and its test
#   PyPI    rnnlab[data]           scikit-learn (8x8 digits), sktime (JapaneseVowels, GunPoint
#                                  and other UCR/UEA .ts files), statsmodels (sunspots, the AR
#                                  baseline), scipy (audio front end)
#
# Usage: scripts/install-data.sh [--speech] [--no-apt] [--no-pip]
# Run as root (or with sudo available) for the Debian part.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_packages=(dataset-fashion-mnist)
do_apt=1 do_pip=1
for arg in "$@"; do
    case "$arg" in
        --speech) apt_packages+=(espeak-ng) ;;
        --no-apt) do_apt=0 ;;
        --no-pip) do_pip=0 ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        *) echo "install-data.sh: unknown option $arg (try --help)" >&2; exit 2 ;;
    esac
done

if [ "$do_apt" = 1 ]; then
    sudo=""
    if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
    missing=()
    for p in "${apt_packages[@]}"; do
        dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
            "${missing[@]}"
    fi
    ls /usr/share/datasets/fashion-mnist/
fi

if [ "$do_pip" = 1 ]; then
    python -m pip install -e ".[data]"
fi
