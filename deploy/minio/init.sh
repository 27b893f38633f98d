#!/bin/sh
# One-shot set-up of the lake bucket on MinIO (the `minio-init` service of docker-compose.yml).
# Idempotent: safe to run on every `docker compose up`.
#   - creates the bucket (with object lock when LAKE_S3_OBJECT_LOCK=on: only possible at creation)
#   - enables versioning when LAKE_S3_VERSIONING=on (object lock implies it)
#   - creates two policies limited to this bucket and two users: read-only (laptops, BI tools)
#     and read-write (the code location, which runs the pipelines)
# The policy files name the default bucket `quant-lake`; they are rendered for LAKE_S3_BUCKET here.
# POSIX sh: the mc image is not guaranteed to ship bash.
set -eu

: "${MINIO_ROOT_USER:?}" "${MINIO_ROOT_PASSWORD:?}" "${LAKE_S3_BUCKET:?}"
: "${LAKE_RO_ACCESS_KEY:?}" "${LAKE_RO_SECRET_KEY:?}" "${LAKE_RW_ACCESS_KEY:?}" "${LAKE_RW_SECRET_KEY:?}"
here="$(cd "$(dirname "$0")" && pwd)"

mc alias set lake "${MINIO_ENDPOINT:-http://minio:9000}" "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD" >/dev/null

if [ "${LAKE_S3_OBJECT_LOCK:-off}" = "on" ]; then
  mc mb --ignore-existing --with-lock "lake/$LAKE_S3_BUCKET"
else
  mc mb --ignore-existing "lake/$LAKE_S3_BUCKET"
fi
if [ "${LAKE_S3_VERSIONING:-off}" = "on" ]; then
  mc version enable "lake/$LAKE_S3_BUCKET"
fi

rendered="$(mktemp -d)"
for access in readonly readwrite; do
  # bucket names are [a-z0-9.-] (checked by the lake's settings): safe in a sed replacement
  sed "s/quant-lake/$LAKE_S3_BUCKET/g" "$here/lake-$access.json" > "$rendered/lake-$access.json"
  mc admin policy create lake "lake-$access" "$rendered/lake-$access.json"
done

mc admin user add lake "$LAKE_RO_ACCESS_KEY" "$LAKE_RO_SECRET_KEY"
mc admin user add lake "$LAKE_RW_ACCESS_KEY" "$LAKE_RW_SECRET_KEY"
# `attach` fails when the policy is already attached: that is the state we want.
mc admin policy attach lake lake-readonly --user "$LAKE_RO_ACCESS_KEY" 2>/dev/null || true
mc admin policy attach lake lake-readwrite --user "$LAKE_RW_ACCESS_KEY" 2>/dev/null || true
echo "bucket $LAKE_S3_BUCKET ready: users $LAKE_RO_ACCESS_KEY (read-only), $LAKE_RW_ACCESS_KEY (read-write)"
