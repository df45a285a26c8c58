#!/usr/bin/env bash
# Reports how this host's sysctls compare with a profile; needs no root.
#
#   tuning/check.sh [--profile FILE]          (default profile: tuning/high-throughput.conf)
#
# One line per key:
#   OK       every field of the current value is at least the profile's
#   LOW      some field is below the profile's (current and wanted are shown)
#   DIFF     a non-numeric value (e.g. a congestion control name) differs from the profile's
#   INFO     a setting that is a trade-off rather than a floor (busy polling): only reported
#   MISSING  this kernel has no such key (or it is not visible in this network namespace)
#
# Exits 0 if nothing is LOW or DIFF, 1 otherwise (and prints the command that fixes it), 2 on a bad
# argument or a profile it cannot read.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$here/common.sh"
DIE_STATUS=2

usage() {
  sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
  exit "${1:-0}"
}

profile=$here/high-throughput.conf
profile_arg=
while [ $# -gt 0 ]; do
  case $1 in
    --profile)
      [ $# -ge 2 ] || die "--profile needs a file"
      profile=$2
      profile_arg=" --profile $2"
      shift 2
      ;;
    --profile=*)
      profile=${1#--profile=}
      profile_arg=" --profile $profile"
      shift
      ;;
    -h | --help) usage 0 ;;
    *)
      echo "${0##*/}: unknown argument: $1" >&2
      usage 2 >&2
      ;;
  esac
done
read_profile "$profile"

echo "profile: $profile"
short=0
missing=0
for key in "${PROFILE_KEYS[@]}"; do
  wanted=${PROFILE_VALUES[$key]}
  path=$(key_path "$key")
  if [ ! -e "$path" ]; then
    printf '%-8s %s (no %s)\n' MISSING "$key" "$path"
    missing=$((missing + 1))
  elif ! current=$(current_value "$path"); then
    printf '%-8s %s (%s is not readable)\n' MISSING "$key" "$path"
    missing=$((missing + 1))
  elif is_numeric "$wanted" && is_exact "$key" "$wanted"; then
    printf '%-8s %s = %s (profile sets %s; a trade-off, not a floor: not judged)\n' \
      INFO "$key" "$current" "$wanted"
  elif meets "$current" "$wanted"; then
    printf '%-8s %s = %s\n' OK "$key" "$current"
  elif is_numeric "$wanted"; then
    printf '%-8s %s = %s, wanted >= %s\n' LOW "$key" "$current" "$wanted"
    short=$((short + 1))
  else
    printf '%-8s %s = %s, wanted %s\n' DIFF "$key" "$current" "$wanted"
    short=$((short + 1))
  fi
done

if ((missing)); then
  echo "$missing key(s) missing here, not counted: not in this kernel, or host-wide keys looked at from" \
    "a container's own network namespace (check and set those on the host)."
fi
if ((short)); then
  echo "$short key(s) below the profile. To fix: sudo ${0%check.sh}apply.sh$profile_arg"
  exit 1
fi
echo "all present keys meet the profile"
