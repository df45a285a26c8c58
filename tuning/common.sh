# shellcheck shell=bash
# Shared by apply.sh and check.sh (sourced, not run): reading a sysctl.d profile, reading the kernel's
# values from /proc/sys, and comparing them field by field.

# Keys that are settings rather than floors: apply.sh writes them as the profile gives them, check.sh
# reports them without judging. Every other numeric value is a floor, and a non-numeric value (say
# net.ipv4.tcp_congestion_control = bbr) is compared as a string.
EXACT_KEYS=(net.core.busy_poll net.core.busy_read)

# Exits with $DIE_STATUS (default 1).
die() {
  echo "${0##*/}: $*" >&2
  exit "${DIE_STATUS:-1}"
}

trim() {
  local s=$1
  s=${s#"${s%%[![:space:]]*}"}
  s=${s%"${s##*[![:space:]]}"}
  printf '%s' "$s"
}

# One space between fields, as /proc/sys separates them with tabs and profiles with anything.
normalize() {
  local -a fields
  read -r -a fields <<<"$1" || true
  printf '%s' "${fields[*]}"
}

# A key's file: dots become slashes; a key written with slashes is used as is.
key_path() {
  if [[ $1 == */* ]]; then
    printf '/proc/sys/%s' "$1"
  else
    printf '/proc/sys/%s' "${1//.//}"
  fi
}

# read_profile FILE: fills PROFILE_KEYS (file order) and PROFILE_VALUES (key -> normalized value).
# sysctl.d format: `key = value`, lines starting with # or ; are comments, a later line for the same
# key wins, and a leading '-' (sysctl.d's "ignore if missing") is accepted and dropped, since a
# missing key is never fatal here anyway.
read_profile() {
  local file=$1 line key value n=0
  if [ ! -f "$file" ] || [ ! -r "$file" ]; then die "cannot read profile $file"; fi
  PROFILE_KEYS=()
  declare -gA PROFILE_VALUES=()
  while IFS= read -r line || [ -n "$line" ]; do
    n=$((n + 1))
    line=$(trim "$line")
    case $line in '' | '#'* | ';'*) continue ;; esac
    [[ $line == *=* ]] || die "$file:$n: expected 'key = value', got: $line"
    key=$(trim "${line%%=*}")
    key=${key#-}
    value=$(normalize "${line#*=}")
    if [ -z "$key" ] || [ -z "$value" ]; then die "$file:$n: expected 'key = value', got: $line"; fi
    [[ -v PROFILE_VALUES[$key] ]] || PROFILE_KEYS+=("$key")
    PROFILE_VALUES[$key]=$value
  done <"$file"
}

# current_value PATH: the kernel's value, normalized; fails if the file cannot be read.
current_value() {
  local raw
  raw=$(cat -- "$1" 2>/dev/null) || return 1
  normalize "$raw"
}

is_numeric() {
  [[ $1 =~ ^-?[0-9]+( -?[0-9]+)*$ ]]
}

# A setting (written as given, not judged) rather than a floor.
is_exact() {
  local key=$1 value=$2 k
  is_numeric "$value" || return 0
  for k in "${EXACT_KEYS[@]}"; do
    [ "$k" = "$key" ] && return 0
  done
  return 1
}

# meets CURRENT WANTED: every field of CURRENT is at least WANTED's (numeric), or they are equal
# (non-numeric). Values with different numbers of fields never meet.
meets() {
  local -a cur want
  local i
  read -r -a cur <<<"$1" || true
  read -r -a want <<<"$2" || true
  if ! is_numeric "$1" || ! is_numeric "$2"; then
    [ "$1" = "$2" ]
    return
  fi
  [ "${#cur[@]}" -eq "${#want[@]}" ] || return 1
  for i in "${!want[@]}"; do
    [ "${cur[i]}" -ge "${want[i]}" ] || return 1
  done
}

# raised CURRENT WANTED: field by field the larger of the two, so applying a floor never lowers a
# value. With different numbers of fields, WANTED as is.
raised() {
  local -a cur want out
  local i
  read -r -a cur <<<"$1" || true
  read -r -a want <<<"$2" || true
  if [ "${#cur[@]}" -ne "${#want[@]}" ] || ! is_numeric "$1" || ! is_numeric "$2"; then
    printf '%s' "$2"
    return
  fi
  for i in "${!want[@]}"; do
    if [ "${cur[i]}" -ge "${want[i]}" ]; then out+=("${cur[i]}"); else out+=("${want[i]}"); fi
  done
  printf '%s' "${out[*]}"
}
