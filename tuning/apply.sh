#!/usr/bin/env bash
# Applies a sysctl profile to this host, printing each key as `key: before -> after`, and undoes it.
#
#   tuning/apply.sh [--profile FILE] [--dry-run]     apply (default profile: tuning/high-throughput.conf)
#   tuning/apply.sh --revert [--dry-run]             put back the values from before
#
# Numeric values are floors: a value below the profile is raised, field by field, and a larger one is
# left alone; net.core.busy_poll and net.core.busy_read are written as given. Before changing anything
# it saves the previous value of every key it is about to change to a state file (default
# /var/lib/ringsmr/sysctl-before.conf, or $RINGSMR_TUNING_STATE). Applying again keeps the values
# first saved, so --revert always returns to the host as it was before the first apply; it restores
# exactly those values and then removes the state file.
#
# Needs root, except with --dry-run. A key this kernel does not have is reported and skipped. Writes
# /proc/sys directly, so it does not need the sysctl program. Exits 1 if anything could not be done,
# 2 on a bad argument.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$here/common.sh"

usage() {
  sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
  exit "${1:-0}"
}

profile=$here/high-throughput.conf
profile_given=0
revert=0
dry_run=0
while [ $# -gt 0 ]; do
  case $1 in
    --profile)
      [ $# -ge 2 ] || DIE_STATUS=2 die "--profile needs a file"
      profile=$2
      profile_given=1
      shift 2
      ;;
    --profile=*)
      profile=${1#--profile=}
      profile_given=1
      shift
      ;;
    --revert) revert=1 && shift ;;
    --dry-run) dry_run=1 && shift ;;
    -h | --help) usage 0 ;;
    *)
      echo "${0##*/}: unknown argument: $1" >&2
      usage 2 >&2
      ;;
  esac
done
((revert && profile_given)) && DIE_STATUS=2 die "--revert restores the saved values; it takes no --profile"
state=${RINGSMR_TUNING_STATE:-/var/lib/ringsmr/sysctl-before.conf}

if ((!dry_run)) && [ "$EUID" -ne 0 ]; then
  die "run as root: sysctl needs CAP_SYS_ADMIN (or see what would change with --dry-run)"
fi
[ -d /proc/sys/net ] || die "/proc/sys/net does not exist: is /proc mounted?"

# Options of the mount that holds PATH (the longest mount point that is a prefix of it).
mount_options() {
  awk -v p="$1" '
    { mp = $5; n = (mp == "/") ? 1 : length(mp) }
    (mp == "/" || p == mp || index(p, mp "/") == 1) && n > best { best = n; opts = $6; at = mp }
    END { print at, opts }' /proc/self/mountinfo
}

# Refuses, before anything is written, when PATH cannot be written even as root, naming the cause.
require_writable() {
  local path=$1 at opts
  [ -w "$path" ] && return 0
  read -r at opts <<<"$(mount_options "$path")"
  if [[ ,$opts, == *,ro,* ]]; then
    die "$at is mounted read-only here (as in a container), so $path cannot be written." \
      "Apply the profile on the host, or give the container the sysctls it may set (docker run --sysctl)." \
      "Nothing was changed."
  fi
  die "$path is not writable even as root (a container or user namespace without the host's" \
    "privileges?). Apply the profile on the host. Nothing was changed."
}

# write_value PATH VALUE: writes, then reads back; on failure sets write_error to the reason.
write_error=
write_value() {
  local path=$1 value=$2 err now
  if ! err=$( { printf '%s\n' "$value" >"$path"; } 2>&1); then
    write_error=${err##*: }
    return 1
  fi
  now=$(current_value "$path") || now='?'
  if [ "$now" != "$value" ]; then
    write_error="the kernel reports '$now' after the write"
    return 1
  fi
}

# Reads FILE (the profile, or the state file when reverting) into a plan: for each key in order, its
# value now and the value to write, or why it is skipped. Lists the keys that change in `changing`.
plan_keys=()
changing=()
declare -A plan_before=() plan_after=() plan_skip=()
make_plan() {
  local key path before wanted after
  read_profile "$1"
  for key in "${PROFILE_KEYS[@]}"; do
    plan_keys+=("$key")
    path=$(key_path "$key")
    wanted=${PROFILE_VALUES[$key]}
    if [ ! -e "$path" ]; then
      plan_skip[$key]="missing on this kernel (no $path), skipped"
      continue
    fi
    if ! before=$(current_value "$path"); then
      plan_skip[$key]="cannot read $path, skipped"
      continue
    fi
    if ((revert)) || is_exact "$key" "$wanted"; then
      after=$wanted
    else
      after=$(raised "$before" "$wanted")
    fi
    plan_before[$key]=$before
    plan_after[$key]=$after
    [ "$before" = "$after" ] || changing+=("$key")
  done
}

# Carries out the plan (or with --dry-run only shows it), one line per key: `key: before -> after`,
# where after is what the kernel reports once written. Returns 1 if any write failed.
run_plan() {
  local key before after now failed=0
  for key in "${plan_keys[@]}"; do
    if [[ -v plan_skip[$key] ]]; then
      echo "$key: ${plan_skip[$key]}"
      continue
    fi
    before=${plan_before[$key]}
    after=${plan_after[$key]}
    if [ "$before" = "$after" ]; then
      echo "$key: $before -> $after (unchanged)"
    elif ((dry_run)); then
      echo "$key: $before -> $after (dry run: not written)"
    elif write_value "$(key_path "$key")" "$after"; then
      now=$(current_value "$(key_path "$key")") || now='?'
      echo "$key: $before -> $now"
    else
      echo "$key: $before -> FAILED to write $after (the kernel said: $write_error)" >&2
      failed=1
    fi
  done
  return "$failed"
}

preflight() {
  local key
  ((dry_run)) && return 0
  for key in "${changing[@]}"; do require_writable "$(key_path "$key")"; done
}

if ((revert)); then
  if [ ! -e "$state" ]; then
    echo "nothing to revert: no saved values at $state"
    exit 0
  fi
  echo "restoring the values saved in $state"
  make_plan "$state"
  preflight
  if ! run_plan; then
    die "some values were not restored; $state is kept so you can retry"
  fi
  if ((dry_run)); then
    echo "dry run: nothing written; $state kept"
    exit 0
  fi
  rm -f -- "$state"
  echo "restored ${#changing[@]} key(s); removed $state"
  exit 0
fi

echo "profile: $profile"
make_plan "$profile"
preflight
if ((${#changing[@]} && !dry_run)); then
  # Save the values from before, keeping those an earlier apply saved (the host's originals).
  declare -A saved=()
  saved_keys=()
  if [ -e "$state" ]; then
    read_profile "$state"
    saved_keys=("${PROFILE_KEYS[@]}")
    for key in "${saved_keys[@]}"; do saved[$key]=${PROFILE_VALUES[$key]}; done
  fi
  for key in "${changing[@]}"; do
    if [[ ! -v saved[$key] ]]; then
      saved_keys+=("$key")
      saved[$key]=${plan_before[$key]}
    fi
  done
  mkdir -p -- "$(dirname -- "$state")"
  tmp=$state.tmp.$$
  trap 'rm -f -- "$tmp"' EXIT
  {
    echo "# Values from before ringsmr's tuning/apply.sh changed them; \`apply.sh --revert\` restores them."
    echo "# Saved $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -n), kernel $(uname -r)."
    for key in "${saved_keys[@]}"; do echo "$key = ${saved[$key]}"; done
  } >"$tmp"
  mv -f -- "$tmp" "$state"
  echo "saved the previous values to $state"
fi
if ! run_plan; then
  die "some keys were not set; the values from before are in $state (undo with: sudo $0 --revert)"
fi
if ((${#changing[@]} == 0)); then
  echo "nothing to change: this host already meets the profile"
elif ((dry_run)); then
  echo "dry run: nothing written; applying would change ${#changing[@]} key(s) and save their values to $state"
else
  echo "applied: ${#changing[@]} key(s) changed; undo with: sudo $0 --revert"
fi
