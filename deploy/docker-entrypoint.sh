#!/bin/sh
# docker-entrypoint.sh: the image's entry point. `docker run IMAGE X ...` and
# `docker run IMAGE canopy X ...` both run `canopy X ...`, as the executable
# itself (PID 1, so it gets the stop signal).
if [ "${1:-}" = canopy ]; then
  shift
fi
exec canopy "$@"
