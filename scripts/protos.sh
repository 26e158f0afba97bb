#!/usr/bin/env bash
# Protobuf tooling of the Interloper control plane.
#
#   scripts/protos.sh generate   regenerate the Python stubs into protos/python/src/icp_protos/interloper
#   scripts/protos.sh check      regenerate into a temp dir and fail if the committed stubs differ
#   scripts/protos.sh lint       buf lint (STANDARD rules, see protos/buf.yaml)
#   scripts/protos.sh breaking   buf breaking (FILE rules) against the protos of branch $PROTOS_AGAINST_BRANCH
#                                (default: main); skipped when that branch has no protos/buf.yaml yet
#
# Sources: protos/interloper/<service>/v<N>/*.proto (package interloper.<service>.v<N>).
# Stubs:   python package icp_protos, e.g. `from icp_protos.interloper.identity.v1 import identity_pb2`.
#
# protoc derives Python module names from the proto file paths, so protos compiled from protos/
# would import each other as `interloper.<service>.v1...`, which is both wrong (our package is
# icp_protos) and dangerous (`interloper` is the framework we depend on). We therefore copy the
# proto tree below a top-level `icp_protos/` folder in a temp dir (rewriting `import
# "interloper/..."` statements accordingly) and compile from there: generated imports come out as
# `from icp_protos.interloper.<service>.v1 import ...`. The protobuf package names (and so the gRPC
# method paths such as /interloper.identity.v1.IdentityService/Authenticate) are unchanged.
#
# Tools come from the workspace dev group and are run with `uv run`: grpcio-tools (protoc and the
# google/protobuf well-known types), mypy-protobuf (typed .pyi stubs) and buf-bin (buf).
set -euo pipefail
export LC_ALL=C

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PROTO_ROOT="$ROOT/protos"
PKG_DIR="$ROOT/protos/python/src/icp_protos"
GEN_DIR="$PKG_DIR/interloper"   # generated; everything below it is owned by this script
AGAINST_BRANCH="${PROTOS_AGAINST_BRANCH:-main}"

cd "$ROOT"

TMP_DIRS=()
cleanup() {
  local d
  for d in "${TMP_DIRS[@]+"${TMP_DIRS[@]}"}"; do rm -rf "$d"; done
}
trap cleanup EXIT

# new_tmp VAR: create a temp dir removed on exit and store its path in VAR.
new_tmp() {
  local d
  d="$(mktemp -d)"
  TMP_DIRS+=("$d")
  printf -v "$1" '%s' "$d"
}

usage() {
  sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

# gen OUT: compile every proto into OUT/icp_protos/interloper/... (plus __init__.py files).
gen() {
  local out="$1" work src wkt
  new_tmp work
  src="$work/src"

  local protos=()
  while IFS= read -r -d '' f; do protos+=("${f#"$PROTO_ROOT"/}"); done \
    < <(find "$PROTO_ROOT/interloper" -type f -name '*.proto' -print0 | sort -z)
  if [[ ${#protos[@]} -eq 0 ]]; then
    echo "no .proto files under protos/interloper" >&2
    return 1
  fi

  local rel
  for rel in "${protos[@]}"; do
    mkdir -p "$src/icp_protos/$(dirname "$rel")"
    sed -E 's#^([[:space:]]*import([[:space:]]+(public|weak))?[[:space:]]+")interloper/#\1icp_protos/interloper/#' \
      "$PROTO_ROOT/$rel" > "$src/icp_protos/$rel"
  done

  wkt="$(uv run python -c 'import os, grpc_tools; print(os.path.join(os.path.dirname(grpc_tools.__file__), "_proto"))')"
  mkdir -p "$out"
  (
    cd "$src"
    local files=()
    for rel in "${protos[@]}"; do files+=("icp_protos/$rel"); done
    uv run --project "$ROOT" python -m grpc_tools.protoc \
      -I . -I "$wkt" \
      --python_out="$out" \
      --grpc_python_out="$out" \
      --mypy_out="$out" \
      --mypy_grpc_out="$out" \
      "${files[@]}"
  ) 2> "$work/protoc.log" || {
    # Report paths of the real sources, not of the temp copies.
    sed 's#^icp_protos/interloper/#protos/interloper/#' "$work/protoc.log" >&2
    return 1
  }
  # mypy-protobuf reports every file it writes on stderr; show anything else.
  grep -v '^Writing mypy to ' "$work/protoc.log" >&2 || true

  # Every generated directory is a regular package.
  local d
  while IFS= read -r -d '' d; do
    [[ -f "$d/__init__.py" ]] || : > "$d/__init__.py"
  done < <(find "$out/icp_protos/interloper" -type d -print0)
  # protoc does not write the top-level package; it is hand-written (and committed) in PKG_DIR.
  rm -f "$out/icp_protos/__init__.py"
}

cmd_generate() {
  local tmp
  new_tmp tmp
  gen "$tmp"
  rm -rf "$GEN_DIR"
  cp -R "$tmp/icp_protos/interloper" "$GEN_DIR"
  echo "generated $(find "$GEN_DIR" -type f \( -name '*.py' -o -name '*.pyi' \) | wc -l | tr -d ' ') files in ${GEN_DIR#"$ROOT"/}"
}

cmd_check() {
  local tmp
  new_tmp tmp
  gen "$tmp"
  if ! diff -r -q -x __pycache__ "$tmp/icp_protos/interloper" "$GEN_DIR" > "$tmp/diff.txt" 2>&1; then
    sed -e "s#$tmp/icp_protos/interloper#<fresh>#g" -e "s#$ROOT/##g" "$tmp/diff.txt" >&2
    echo "generated stubs are stale: run make protos" >&2
    return 1
  fi
  echo "generated stubs are up to date"
}

cmd_lint() {
  uv run buf lint "$PROTO_ROOT"
  echo "buf lint: ok"
}

cmd_breaking() {
  if ! git rev-parse --verify --quiet "$AGAINST_BRANCH^{commit}" > /dev/null; then
    echo "buf breaking: skipped (no branch '$AGAINST_BRANCH' in this clone)"
    return 0
  fi
  if ! git cat-file -e "$AGAINST_BRANCH:protos/buf.yaml" 2> /dev/null; then
    echo "buf breaking: skipped ('$AGAINST_BRANCH' has no protos/buf.yaml yet)"
    return 0
  fi
  uv run buf breaking protos --against ".git#branch=$AGAINST_BRANCH,subdir=protos"
  echo "buf breaking: ok (against $AGAINST_BRANCH)"
}

case "${1:-}" in
  generate) cmd_generate ;;
  check) cmd_check ;;
  lint) cmd_lint ;;
  breaking) cmd_breaking ;;
  -h | --help | help) usage ;;
  *)
    usage >&2
    exit 2
    ;;
esac
